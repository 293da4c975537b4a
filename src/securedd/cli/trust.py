"""How much the commands that read an artifact can say about it: integrity, or a checked signature.

An artifact's SHA-256 proves its bytes are whole, not who wrote them: anyone can write a
file with a valid hash. Only a signature checked against the sender's public key says
that. :func:`load_checked` loads an artifact either way and says which it was, in words
that never call an unsigned file "verified"; with ``--public`` it reads the file once and
loads the very bytes whose signature it checked.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from securedd.artifacts import Artifact, load_artifact, load_artifact_bytes
from securedd.cli.common import echo
from securedd.errors import ConfigError
from securedd.secure.signing import read_verified, signature_path

__all__ = ["Checked", "add_signature_flags", "load_checked"]


@dataclass(frozen=True)
class Checked:
    """An artifact as loaded, what was checked (``status``), its size in bytes and its signer, if checked."""

    artifact: Artifact
    status: str
    size: int
    signer: str | None = None


def add_signature_flags(p: argparse.ArgumentParser) -> None:
    """``--public``, ``--signature`` and ``--require-signature``."""
    p.add_argument("--public", metavar="PEM", help="check the artifact's signature with the sender's public key "
                                                   "first; a file that fails is refused")
    p.add_argument("--signature", metavar="FILE", help="signature file (default: ARTIFACT.sig)")
    p.add_argument("--require-signature", action="store_true",
                   help="refuse the artifact unless its signature is checked (needs --public)")


def load_checked(args: argparse.Namespace, *, warn: bool = True) -> Checked:
    """Load ``args.artifact``, checking its signature when ``args.public`` is given.

    Without ``--public``: with ``--require-signature`` it is an error; otherwise the
    artifact loads on its integrity alone, and ``warn`` prints a warning saying so.

    Raises:
        ConfigError: ``--require-signature`` without ``--public``.
        ArtifactError: the signature or the artifact is refused.
    """
    if args.public:
        data, signer = read_verified(args.artifact, args.public, args.signature)
        art = load_artifact_bytes(data, source=args.artifact)  # the bytes checked, not a second read
        return Checked(art, f"signed by {signer}, verified", len(data), signer)
    if getattr(args, "require_signature", False):
        raise ConfigError(f"{args.artifact}: --require-signature is set but no signature was checked; pass "
                          "--public PEM, the sender's public key (securedd keygen writes NAME.pub.pem)")
    art = load_artifact(args.artifact)
    sig = Path(args.signature) if args.signature else signature_path(args.artifact)
    status = ("integrity ok, not signed" if not sig.is_file()
              else f"integrity ok, signature not checked (pass --public PEM to check {sig})")
    if warn:
        echo(f"securedd {args.command}: warning: {args.artifact}: no signature checked ({status}); anyone who can "
             "write the file could have made it. Pass --public PEM to check the sender's signature, or "
             "--require-signature to refuse unchecked files", err=True)
    return Checked(art, status, Path(args.artifact).stat().st_size)
