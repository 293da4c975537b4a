"""Ed25519 signatures: a signed artifact verifies; one changed byte or another signer is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from securedd.errors import ArtifactError, ConfigError
from securedd.secure.signing import (
    generate_signing_keys,
    read_verified,
    sign_artifact,
    signature_path,
    verify_artifact,
)


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


def _signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    private, public = generate_signing_keys(tmp_path / "sender")
    art = tmp_path / "set.safetensors"
    art.write_bytes(b"distilled bytes" * 10)
    return art, sign_artifact(art, private), public


@pytest.mark.parametrize("text, words", [
    ("[" * 30_000 + "]" * 30_000, "nested 30000 levels deep"),
    ('{"format": {"a": {"b": 1}}}', "nested 3 levels deep"),
    ("{}", "format None"),
    ("[]", "not a JSON object"),
    ("not json", "not valid JSON"),
    ('{"format": "securedd-signature/1", "signature": "zz"}', "'signature' must be 128 lower-case hex digits"),
    ('{"format": "securedd-signature/1", "algorithm": "RSA"}', "algorithm 'RSA'"),
    ('{"format": "securedd-signature/1", "signature": "' + "ab" * 64 + '", "signer": 5}', "'signer' must be"),
])
def test_malformed_and_deeply_nested_signature_files_are_refused_cleanly(tmp_path: Path, text: str, words: str):
    art, sig, public = _signed(tmp_path)
    sig.write_text(text)
    with pytest.raises(ArtifactError, match=words):
        verify_artifact(art, public)


def test_a_prepended_duplicate_key_in_a_signature_is_refused(tmp_path: Path):
    art, sig, public = _signed(tmp_path)
    sig.write_text('{"signer": "someone else",' + sig.read_text().lstrip()[1:])
    with pytest.raises(ArtifactError, match="repeats the key 'signer'"):
        verify_artifact(art, public)


def test_an_oversized_signature_file_is_refused_before_reading(tmp_path: Path):
    art, sig, public = _signed(tmp_path)
    with open(sig, "ab") as fh:
        fh.truncate(2**30)  # sparse
    with pytest.raises(ArtifactError, match="more than the 65536 a signature file may have"):
        verify_artifact(art, public)


def test_read_verified_returns_the_bytes_it_checked(tmp_path: Path):
    art, _, public = _signed(tmp_path)
    data, signer = read_verified(art, public)
    assert data == art.read_bytes() and signer == verify_artifact(art, public)
    with pytest.raises(ArtifactError, match="more than the 10 an artifact may have"):
        read_verified(art, public, max_bytes=10)
