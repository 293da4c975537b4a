"""load_checked: the bytes whose signature was checked are the bytes loaded, and the words say what was checked."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from securedd.artifacts import save_artifact
from securedd.cli import trust
from securedd.data import dataset_spec
from securedd.secure.signing import generate_signing_keys, sign_artifact

SPEC = dataset_spec("digits")


def _save(path: Path, seed: int) -> str:
    images = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    return save_artifact(path, images, torch.arange(10), spec=SPEC, method="random", ipc=1, seed=seed).sha256


def test_the_verified_bytes_are_loaded_even_if_the_file_is_swapped_after_the_check(tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch):
    art = tmp_path / "set.safetensors"
    signed_sha = _save(art, 0)
    private, public = generate_signing_keys(tmp_path / "sender")
    sign_artifact(art, private)
    real_read_verified = trust.read_verified

    def read_then_swap(*args: object, **kwargs: object) -> tuple[bytes, str]:
        data, signer = real_read_verified(*args, **kwargs)  # type: ignore[arg-type]
        _save(art, 1)  # an attacker replaces the file right after the signature check
        return data, signer

    def no_second_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("the artifact was read a second time")

    monkeypatch.setattr(trust, "read_verified", read_then_swap)
    monkeypatch.setattr(trust, "load_artifact", no_second_read)
    args = argparse.Namespace(artifact=str(art), public=str(public), signature=None, require_signature=True,
                              command="train")
    checked = trust.load_checked(args)
    assert checked.artifact.sha256 == signed_sha != _save(tmp_path / "other.safetensors", 1)
    assert checked.status.startswith("signed by ") and checked.status.endswith(", verified")
    assert checked.artifact.path == art
