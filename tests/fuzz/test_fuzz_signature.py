"""Fuzz the signature verifier: corrupted signature files, artifacts and public keys.

Allowed outcomes: a clean securedd error, or a verification of exactly the signed artifact
bytes by exactly the signing key. A key file or signature file may change harmlessly (a
trailing newline in the PEM, the signature's JSON re-indented); what they say may not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from securedd.artifacts import save_artifact
from securedd.data import dataset_spec
from securedd.secure.signing import generate_signing_keys, sign_artifact, signature_path, verify_artifact
from tests.fuzz.harness import fuzz, outcome
from tests.fuzz.test_fuzz_artifact import JSON, _random


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("signed")
    art = folder / "set.safetensors"
    save_artifact(art, torch.zeros(10, 1, 8, 8), torch.arange(10), spec=dataset_spec("digits"), method="random",
                  ipc=1, seed=0)
    private, public = generate_signing_keys(folder / "sender")
    _, other = generate_signing_keys(folder / "stranger")
    sign_artifact(art, private)
    return {"artifact": art.read_bytes(), "signature": signature_path(art).read_bytes(), "public": public.read_bytes(),
            "other": other.read_bytes(), "signer": verify_artifact(art, public).encode()}


def _structured_signature(sig: bytes, draw: st.DrawFn) -> bytes:
    doc = json.loads(sig)
    kind = draw(st.sampled_from(["field", "deep", "drop", "hex"]))
    if kind == "field":
        doc[draw(st.sampled_from(sorted(doc) + ["extra"]))] = draw(JSON)
    elif kind == "drop":
        doc.pop(draw(st.sampled_from(sorted(doc))))
    elif kind == "hex":
        raw = bytearray.fromhex(doc["signature"])
        raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
        doc["signature"] = raw.hex()
    else:
        depth = draw(st.integers(100, 100_000))
        return json.dumps(doc)[:-1].encode() + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    return json.dumps(doc).encode()


@fuzz
@given(data=st.data())
def test_a_tampered_signature_artifact_or_key_never_verifies(tmp_path: Path, signed: dict[str, bytes], data) -> None:
    draw = data.draw
    files = dict(signed)
    target = draw(st.sampled_from(["artifact", "signature", "public", "swap-key"]))
    if target == "swap-key":
        files["public"] = files["other"]
    elif target == "signature" and draw(st.booleans()):
        files["signature"] = _structured_signature(files["signature"], draw)
    else:
        files[target] = _random(files[target], draw)
    art, sig, pub = tmp_path / "set.safetensors", tmp_path / "set.safetensors.sig", tmp_path / "sender.pub"
    art.write_bytes(files["artifact"])
    sig.write_bytes(files["signature"])
    pub.write_bytes(files["public"])
    result = outcome("signature verifier", lambda: verify_artifact(art, pub, sig))
    assert result is None or (files["artifact"] == signed["artifact"] and result.encode() == signed["signer"]), \
        f"verified after changing the {target}"
