"""Network pools: trained, verified on load, resumed, refused when they do not fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from securedd.data.spec import DatasetSpec
from securedd.errors import ArtifactError, MismatchError
from securedd.training.pool import load_pool, train_pool


def test_pool_trains_verifies_and_resumes(tmp_path: Path, digits_train):
    folder = train_pool("convnet_tiny", digits_train, tmp_path / "p", count=2, epochs=1, progress=False)
    pool = load_pool(folder)
    first = pool.network(0)
    assert len(pool) == 2 and pool.model == "convnet_tiny" and pool.shape == (1, 8, 8)
    assert not torch.equal(next(first.parameters()), next(pool.network(1).parameters()))
    before = (folder / "net_000.safetensors").read_bytes()
    train_pool("convnet_tiny", digits_train, folder, count=3, epochs=1, progress=False)  # adds one, keeps two
    assert len(load_pool(folder)) == 3 and (folder / "net_000.safetensors").read_bytes() == before
    with pytest.raises(MismatchError, match="other settings"):
        train_pool("convnet_tiny", digits_train, folder, count=3, epochs=2, progress=False)
    data = bytearray((folder / "net_001.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "net_001.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256 mismatch"):
        load_pool(folder).network(1)
    with pytest.raises(MismatchError, match="not a network pool"):
        load_pool(tmp_path)
    (folder / "net_000.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"net_000\.safetensors: pool network file is missing.*securedd pool"):
        load_pool(folder).network(0)


def test_a_pool_manifest_written_before_the_store_still_loads(tmp_path: Path, digits_train):
    import json

    folder = train_pool("convnet_tiny", digits_train, tmp_path / "p", count=1, epochs=1, progress=False)
    manifest = json.loads((folder / "pool.json").read_text())
    (folder / "pool.json").write_text(json.dumps(manifest, indent=1))  # the earlier layout: insertion order, no newline
    assert load_pool(folder).network(0) is not None
    (folder / "pool.json").write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(ArtifactError, match="pool.json: not a manifest of this kind"):
        load_pool(folder)


def test_pool_for_another_datasets_shape(tmp_path: Path, digits_train):
    target = DatasetSpec("big-digits", 1, 16, 16, 10, digits_train.spec.class_names, (0.5,), (0.5,))
    pool = load_pool(train_pool("convnet_tiny", digits_train, tmp_path, count=1, epochs=1, target=target,
                                progress=False))
    assert pool.shape == (1, 16, 16) and pool.network(0)(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
