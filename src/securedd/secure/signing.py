"""Ed25519 signatures over artifact files (the ``cryptography`` library).

The sender signs the artifact's bytes with a private key; the receiver checks them with
the sender's public key and refuses a file that changed by one byte, or that another key
signed. The signature goes beside the artifact as ``<artifact>.sig`` (JSON: the signature
and the public key's fingerprint).

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> private, public = generate_signing_keys(folder / "sender")
    >>> _ = (folder / "set.safetensors").write_bytes(b"distilled bytes")
    >>> sig = sign_artifact(folder / "set.safetensors", private)
    >>> verify_artifact(folder / "set.safetensors", public) == fingerprint(load_public_key(public))
    True
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from securedd.artifacts import max_artifact_bytes
from securedd.artifacts.strict_json import loads_strict
from securedd.errors import ArtifactError, ConfigError
from securedd.store import atomic_write_bytes, warn_if_exposed

__all__ = ["fingerprint", "generate_signing_keys", "load_private_key", "load_public_key", "read_signature",
           "read_verified", "sign_artifact", "signature_path", "verify_artifact"]

SIGNATURE_FORMAT = "securedd-signature/1"
MAX_SIGNATURE_BYTES = 64 * 2**10
_HEX = frozenset("0123456789abcdef")


def signature_path(artifact: str | Path) -> Path:
    """Where the signature of ``artifact`` goes: ``<artifact>.sig``."""
    return Path(str(artifact) + ".sig")


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex (16 bytes shown): which key signed."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def generate_signing_keys(stem: str | Path) -> tuple[Path, Path]:
    """A new Ed25519 key pair: ``<stem>.pem`` (private, mode 0600 from its first byte) and ``<stem>.pub.pem``."""
    private = Ed25519PrivateKey.generate()
    priv_path, pub_path = Path(str(stem) + ".pem"), Path(str(stem) + ".pub.pem")
    atomic_write_bytes(priv_path, private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()), private=True)
    atomic_write_bytes(pub_path, private.public_key().public_bytes(serialization.Encoding.PEM,
                                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (a warning is logged when others may read it)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read a private signing key from {path} ({exc}); make one with "
                          "`securedd keygen --out NAME`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    warn_if_exposed(Path(path), "the private signing key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read a public key from {path} ({exc}); it is the NAME.pub.pem that "
                          "`securedd keygen --out NAME` wrote") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def sign_artifact(artifact: str | Path, private_key: str | Path) -> Path:
    """Sign the bytes of ``artifact``; write and return ``<artifact>.sig``."""
    key = load_private_key(private_key)
    data = _read_capped(Path(artifact), max_artifact_bytes(), "sign")
    sig = {"format": SIGNATURE_FORMAT, "algorithm": "Ed25519", "signer": fingerprint(key.public_key()),
           "bytes": len(data), "signature": key.sign(data).hex()}
    out = signature_path(artifact)
    atomic_write_bytes(out, (json.dumps(sig, indent=1) + "\n").encode())
    return out


def _read_capped(path: Path, max_bytes: int, purpose: str,
                 hint: str = "an artifact may have (raise the cap with SECUREDD_MAX_ARTIFACT_BYTES=BYTES if the "
                             "file is trusted)") -> bytes:
    """The bytes of ``path``, refusing a file over ``max_bytes`` before reading it."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ArtifactError(f"cannot {purpose} {path}: it is not a file")
        if size > max_bytes:
            raise ArtifactError(f"cannot {purpose} {path}: it has {size} bytes, more than the {max_bytes} {hint}")
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path} to {purpose} it ({exc.strerror or exc})") from None


def read_signature(sig_path: str | Path) -> dict[str, object]:
    """The fields of a ``.sig`` file, each checked by type (size and nesting bounded).

    Raises:
        ArtifactError: no such file, too large, malformed JSON, deep nesting, duplicate keys,
            or a missing or mistyped field.
    """
    sig_path = Path(sig_path)
    if not sig_path.is_file():
        raise ArtifactError(f"no signature at {sig_path}: the sender signs with `securedd sign ARTIFACT "
                            "--private NAME.pem`")
    raw = _read_capped(sig_path, MAX_SIGNATURE_BYTES, "read the signature", "a signature file may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(f"{sig_path} is not a securedd signature (not UTF-8 text)") from None
    sig = loads_strict(text, what=str(sig_path), max_depth=2)
    problem = None
    if not isinstance(sig, dict):
        problem = "not a JSON object"
    elif sig.get("format") != SIGNATURE_FORMAT:
        problem = f"format {sig.get('format')!r}, expected {SIGNATURE_FORMAT!r}"
    elif sig.get("algorithm", "Ed25519") != "Ed25519":
        problem = f"algorithm {sig.get('algorithm')!r}, expected 'Ed25519'"
    elif not isinstance(sig.get("signature"), str) or len(sig["signature"]) != 128 or not set(sig["signature"]) <= _HEX:
        problem = "'signature' must be 128 lower-case hex digits"
    elif not isinstance(sig.get("signer"), str) or len(sig["signer"]) > 64:
        problem = "'signer' must be a key fingerprint"
    elif "bytes" in sig and (not isinstance(sig["bytes"], int) or isinstance(sig["bytes"], bool)):
        problem = "'bytes' must be an integer"
    if problem:
        raise ArtifactError(f"{sig_path} is not a securedd signature ({problem})")
    return dict(sig)


def read_verified(artifact: str | Path, public_key: str | Path, signature: str | Path | None = None, *,
                  max_bytes: int | None = None) -> tuple[bytes, str]:
    """Read ``artifact`` once and check its signature; return the very bytes checked and the signer.

    Load them with :func:`securedd.artifacts.load_artifact_bytes`, so what is used is what
    was verified (a file swapped between a check and a second read cannot slip in).

    Raises:
        ArtifactError: no or malformed signature, a signature by another key, bytes that
            changed, or a file over the size cap (``max_bytes``, default
            ``$SECUREDD_MAX_ARTIFACT_BYTES`` or 1 GiB).
    """
    key = load_public_key(public_key)
    sig_path = Path(signature) if signature is not None else signature_path(artifact)
    sig = read_signature(sig_path)
    if sig["signer"] != fingerprint(key):
        raise ArtifactError(f"{artifact} was signed by key {sig['signer']}, not by the given public key "
                            f"({fingerprint(key)}): refusing it")
    data = _read_capped(Path(artifact), max_artifact_bytes(max_bytes), "verify")
    try:
        key.verify(bytes.fromhex(str(sig["signature"])), data)
    except InvalidSignature:
        raise ArtifactError(f"the signature does not match {artifact}: the file changed after it was signed "
                            f"({len(data)} bytes now, {sig.get('bytes')} signed); refusing it") from None
    return data, fingerprint(key)


def verify_artifact(artifact: str | Path, public_key: str | Path, signature: str | Path | None = None) -> str:
    """Check ``artifact`` against its signature and the sender's public key; return the signer.

    Raises:
        ArtifactError: no signature, a malformed one, a signature by another key, or bytes
            that changed.
    """
    return read_verified(artifact, public_key, signature)[1]
