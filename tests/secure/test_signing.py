"""Ed25519 signatures: a signed artifact verifies; one changed byte or another signer is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from securedd.errors import ArtifactError, ConfigError
from securedd.secure.signing import generate_signing_keys, sign_artifact, signature_path, verify_artifact


def test_sign_verify_and_every_refusal(tmp_path: Path):
    private, public = generate_signing_keys(tmp_path / "sender")
    _, other_public = generate_signing_keys(tmp_path / "someone")
    art = tmp_path / "set.safetensors"
    art.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ArtifactError, match="no signature"):
        verify_artifact(art, public)
    sig = sign_artifact(art, private)
    assert sig == signature_path(art) and verify_artifact(art, public)
    with pytest.raises(ArtifactError, match="not by the given public key"):
        verify_artifact(art, other_public)
    data = bytearray(art.read_bytes())
    data[500] ^= 1
    art.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="changed after it was signed"):
        verify_artifact(art, public)


def test_wrong_key_files_get_clear_errors(tmp_path: Path):
    private, public = generate_signing_keys(tmp_path / "sender")
    (tmp_path / "a").write_bytes(b"x")
    with pytest.raises(ConfigError, match="public key"):
        verify_artifact(tmp_path / "a", private)
    with pytest.raises(ConfigError, match="private signing key"):
        sign_artifact(tmp_path / "a", public)
