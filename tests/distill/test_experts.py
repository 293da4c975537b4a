"""Expert trajectories: layout, determinism, resume, verification and the disk check."""

import json
from pathlib import Path

import pytest
import torch

from securedd.config import RunConfig
from securedd.distill import experts as experts_mod
from securedd.distill.experts import ExpertSet, expert_bytes, plan_experts, shard_name, train_experts
from securedd.errors import ArtifactError, ConfigError, MismatchError
from securedd.models import create_model
from securedd.models.functional import flat_params
from securedd.rng import make_generator

CFG = RunConfig(model="mlp")


@pytest.fixture(scope="module")
def small(digits_train):
    idx = torch.cat([torch.nonzero(digits_train.labels == c).flatten()[:20] for c in range(10)])
    return digits_train.subset(idx)


def _train(out, small, n=2, **kw):
    return train_experts(CFG, out, num_experts=n, epochs=kw.pop("epochs", 2), real=small, progress=False, **kw)


def test_layout_manifest_and_first_snapshot(tmp_path: Path, small):
    manifest = _train(tmp_path, small)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expert_0000.safetensors", "expert_0001.safetensors",
                                                         "manifest.json"]
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest and manifest["model"] == "mlp" and manifest["epochs"] == 2 and manifest["zca"] is False
    assert manifest["dataset"]["name"] == "digits" and manifest["lr"] == 0.01 and len(manifest["shards"]) == 2
    experts = ExpertSet.open(tmp_path)
    traj = experts.trajectory(1)
    assert traj.shape == (3, manifest["num_params"]) and traj.dtype == torch.float32
    fresh = create_model("mlp", small.spec.shape, 10, generator=make_generator(0, "experts", 1))
    assert torch.equal(traj[0], flat_params(fresh))  # the start is the seeded initialisation
    assert not torch.equal(traj[0], traj[2])
    first, last = experts.snapshots(1, (0, 2))
    assert torch.equal(first, traj[0]) and torch.equal(last, traj[2])
    assert sum(p.stat().st_size for p in tmp_path.glob("*.safetensors")) >= expert_bytes(manifest["num_params"], 2, 2)


def test_resume_skips_finished_shards_and_matches_one_go(tmp_path: Path, small, monkeypatch):
    _train(tmp_path / "once", small, n=2)
    _train(tmp_path / "parts", small, n=1)
    before = (tmp_path / "parts" / shard_name(0)).stat().st_mtime_ns
    calls = []
    real_train = experts_mod._train_one
    monkeypatch.setattr(experts_mod, "_train_one", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    _train(tmp_path / "parts", small, n=2)
    assert len(calls) == 1  # only the missing expert was trained
    assert (tmp_path / "parts" / shard_name(0)).stat().st_mtime_ns == before
    for i in range(2):
        assert (tmp_path / "once" / shard_name(i)).read_bytes() == (tmp_path / "parts" / shard_name(i)).read_bytes()


def test_tampered_shard_is_refused_on_load_and_on_resume(tmp_path: Path, small):
    _train(tmp_path, small, n=1)
    path = tmp_path / shard_name(0)
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"expert_0000\.safetensors: expert file is corrupted or was changed"):
        ExpertSet.open(tmp_path).trajectory(0)
    with pytest.raises(ArtifactError, match="delete this file and rerun"):
        _train(tmp_path, small, n=2)


def test_other_settings_in_the_same_folder_are_refused(tmp_path: Path, small):
    _train(tmp_path, small, n=1, epochs=1)
    with pytest.raises(MismatchError, match="epochs: stored 1, asked 2"):
        _train(tmp_path, small, n=1, epochs=2)


def test_disk_estimate_and_refusal(tmp_path: Path, small, monkeypatch):
    plan = plan_experts(CFG, tmp_path / "new", num_experts=3, epochs=4, spec=small.spec)
    assert plan.total_bytes == plan.num_params * 4 * 5 * 3 == plan.remaining_bytes and plan.done == ()
    monkeypatch.setattr(experts_mod, "_free_bytes", lambda path: 1000)
    with pytest.raises(ConfigError, match=r"need .* more but only 1\.0 kB is free"):
        _train(tmp_path / "new", small, n=3, epochs=4)
    assert not (tmp_path / "new").exists()


def test_missing_folder_tells_how_to_train(tmp_path: Path):
    with pytest.raises(ConfigError, match="securedd experts"):
        ExpertSet.open(tmp_path / "nothing")


def test_zca_is_fitted_once_stored_verified_and_reused(tmp_path: Path, small, monkeypatch):
    from securedd.data.zca import ZCAWhitening

    _train(tmp_path, small, n=1, epochs=1, zca=True)
    stored = ExpertSet.open(tmp_path).zca()
    assert stored is not None and stored.fingerprint() == ZCAWhitening.fit_data(small).fingerprint()
    fits = []
    monkeypatch.setattr(ZCAWhitening, "fit_data", classmethod(lambda cls, data: fits.append(1)))
    _train(tmp_path, small, n=2, epochs=1, zca=True)  # resumed: the stored transform, not a new fit
    assert fits == [] and len(ExpertSet.open(tmp_path)) == 2
    path = tmp_path / "zca.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"zca\.safetensors: expert file is corrupted"):
        ExpertSet.open(tmp_path).zca()
