import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securedd.artifacts import SCHEMA_VERSION, load_artifact, save_artifact
from securedd.data import dataset_spec
from securedd.errors import ArtifactError

SPEC = dataset_spec("digits")


def _save(path: Path, **kw):
    images = kw.pop("images", torch.randn(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    labels = kw.pop("labels", torch.arange(10).repeat_interleave(2))
    return save_artifact(path, images, labels, spec=SPEC, method="random", ipc=2, seed=0, **kw)


def test_round_trip_keeps_tensors_and_metadata(tmp_path: Path):
    lrs = torch.tensor([0.02])
    art = _save(tmp_path / "a.safetensors", lrs=lrs, extras={"mask": torch.ones(3)}, config={"seed": 0},
                privacy={"mechanism": "gaussian", "epsilon": 8.0, "delta": 1e-5})
    back = load_artifact(tmp_path / "a.safetensors")
    assert torch.equal(back.images, art.images) and torch.equal(back.labels, art.labels)
    assert torch.equal(back.lrs, lrs) and torch.equal(back.extras["mask"], torch.ones(3))
    assert back.spec == SPEC and back.sha256 == art.sha256 and back.metadata["schema"] == SCHEMA_VERSION
    assert back.metadata["privacy"]["epsilon"] == 8.0 and not back.soft_labels


def test_soft_labels_round_trip(tmp_path: Path):
    soft = torch.softmax(torch.randn(20, 10), 1)
    back = load_artifact(_save(tmp_path / "s.safetensors", labels=soft).path)
    assert back.soft_labels and back.metadata["label_kind"] == "soft"
    assert torch.equal(back.hard_labels(), soft.argmax(1))


def test_same_content_gives_identical_bytes(tmp_path: Path):
    _save(tmp_path / "a.safetensors")
    _save(tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_every_single_byte_flip_is_refused(tmp_path: Path):
    path = _save(tmp_path / "a.safetensors").path
    data = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    for pos in range(len(data)):
        corrupted = bytearray(data)
        corrupted[pos] ^= 0x01
        bad.write_bytes(bytes(corrupted))
        with pytest.raises(ArtifactError, match="bad.safetensors"):
            load_artifact(bad)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_corruptions_are_refused(tmp_path: Path, data):
    path = tmp_path / "p.safetensors"
    if not path.exists():
        _save(path)
    blob = bytearray(path.read_bytes())
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    if kind == "flip":
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        pos = data.draw(st.integers(0, len(blob)))
        blob[pos:pos] = bytes([data.draw(st.integers(0, 255))])
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError):
        load_artifact(bad)


def test_consistent_rewrite_with_changed_metadata_is_refused(tmp_path: Path):
    """An attacker who edits the metadata and re-serialises validly still fails the hash."""
    from safetensors.torch import load, save

    path = _save(tmp_path / "a.safetensors").path
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["securedd"])
    meta["seed"] = 7  # a valid value, so only the hash can tell
    forged = save(load(data), metadata={"securedd": json.dumps(meta, sort_keys=True, separators=(",", ":"))})
    path.write_bytes(forged)
    with pytest.raises(ArtifactError, match="SHA-256 mismatch"):
        load_artifact(path)


def test_missing_file_and_foreign_safetensors(tmp_path: Path):
    from safetensors.torch import save_file

    with pytest.raises(ArtifactError, match="no such artifact"):
        load_artifact(tmp_path / "nope.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ArtifactError, match="not a securedd artifact"):
        load_artifact(tmp_path / "other.safetensors")


def test_shape_checks_on_save(tmp_path: Path):
    with pytest.raises(ArtifactError, match="images must be"):
        _save(tmp_path / "x.safetensors", images=torch.zeros(20, 3, 8, 8))
    with pytest.raises(ArtifactError, match="hard labels"):
        _save(tmp_path / "x.safetensors", labels=torch.full((20,), 12))


def test_no_partial_file_after_failed_write(tmp_path: Path):
    with pytest.raises(ArtifactError):
        _save(tmp_path / "x.safetensors", labels=torch.zeros(3, dtype=torch.long))
    assert list(tmp_path.iterdir()) == []


def test_crash_during_save_keeps_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "a.safetensors"
    old = _save(path).sha256
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr("securedd.store.os.replace", crash)  # artifacts are written by securedd.store
    with pytest.raises(OSError):
        _save(path, images=torch.zeros(20, 1, 8, 8))
    assert path.read_bytes() == before and load_artifact(path).sha256 == old
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]  # no temp file left behind


def test_float16_payload_halves_the_images_and_loads_as_float32(tmp_path: Path):
    spec = dataset_spec("digits")
    images = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    soft = torch.softmax(torch.randn(10, 10), 1)
    full = save_artifact(tmp_path / "a.safetensors", images, soft, spec=spec, method="sldd", ipc=1, seed=0)
    half = save_artifact(tmp_path / "b.safetensors", images, soft, spec=spec, method="sldd", ipc=1, seed=0,
                         payload="float16")
    loaded = load_artifact(tmp_path / "b.safetensors")
    assert loaded.metadata["payload"] == "float16" and full.metadata["payload"] == "float32"
    assert loaded.images.dtype == torch.float32 and loaded.labels.dtype == torch.float32
    assert torch.equal(loaded.images, images.half().float()) and torch.equal(half.images, loaded.images)
    tensor_bytes = (images.numel() + soft.numel()) * 2
    assert (tmp_path / "a.safetensors").stat().st_size - (tmp_path / "b.safetensors").stat().st_size >= tensor_bytes - 8
    with pytest.raises(ArtifactError, match="payload must be one of"):
        save_artifact(tmp_path / "c.safetensors", images, soft, spec=spec, method="x", ipc=1, seed=0, payload="int8")
