"""Secure transmission of distilled sets: target-network keys (SecDD) and Ed25519 signatures."""

from securedd.secure.keys import TargetKey, load_key, new_key, save_key
from securedd.secure.signing import generate_signing_keys, sign_artifact, verify_artifact

__all__ = ["TargetKey", "generate_signing_keys", "load_key", "new_key", "save_key", "sign_artifact",
           "verify_artifact"]
