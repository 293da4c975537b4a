"""Signed artifacts: the receiver uses a distilled set only if its sender's signature verifies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from securedd.defences.base import DEFENCES, Defence
from securedd.errors import ConfigError
from securedd.secure.signing import verify_artifact

__all__ = ["Signing", "SigningParams"]


@dataclass(frozen=True)
class SigningParams:
    """The sender's Ed25519 ``public_key`` (PEM path) and, if not ``<artifact>.sig``, the ``signature``."""

    public_key: str = ""
    signature: str = ""


@DEFENCES.register("signing")
class Signing(Defence[SigningParams]):
    """Ed25519 signatures over artifact files: a receiver refuses one its sender did not sign.

    Threat model: an active attacker on the channel between sender and receiver who may
    replace or alter the artifact file. A file changed by one byte, or signed by another
    key, is refused. It does not hide the set (an eavesdropper still reads it; SecDD's key
    is the defence there) and it trusts whoever holds the private key.
    """

    name = "signing"
    Params = SigningParams
    stage = "artifact"

    def check(self, artifact: str | Path) -> None:
        if not self.params.public_key:
            raise ConfigError("the signing defence needs the sender's public key: public_key=PATH")
        verify_artifact(artifact, self.params.public_key, self.params.signature or None)
