"""The decoded-image cache: an entry that does not match its source is detected, logged and rebuilt."""

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from securedd.data.cache import pixel_digest, read_cached
from securedd.data.folders import read_image_folder


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "securedd" / "tensors"


def _tree(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for j in range(3):
            Image.fromarray(rng.integers(0, 255, (5, 5), dtype=np.uint8), "L").save(root / name / f"{j}.png")
    past = time.time() - 3600  # old enough to be cached
    for path in root.rglob("*.png"):
        os.utime(path, (past, past))
    return root


def _entry(cache: Path) -> Path:
    entries = list(cache.glob("*.safetensors"))
    assert len(entries) == 1
    return entries[0]


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("decoded although the cache entry is valid")

    monkeypatch.setattr("securedd.data.folders._decode", fail)


def test_a_valid_entry_is_used_without_decoding(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    root = _tree(tmp_path / "mine")
    first = read_image_folder(root)[0]
    _no_decoding(monkeypatch)
    assert torch.equal(read_image_folder(root)[0], first)


def test_an_overwritten_entry_is_detected_logged_and_rebuilt(tmp_path: Path, cache: Path,
                                                           caplog: pytest.LogCaptureFixture):
    root = _tree(tmp_path / "mine")
    first = read_image_folder(root)[0]
    entry = _entry(cache)
    save_file({"pixels": torch.full_like(first, 255)}, str(entry))  # other pixels, same name, no hash
    with caplog.at_level(logging.WARNING, logger="securedd.data.cache"):
        again = read_image_folder(root)[0]
    assert torch.equal(again, first) and "does not match its source" in caplog.text
    assert read_cached(entry.stem, len(first)) is not None  # the rebuilt entry is valid again


def test_an_entry_with_a_stale_hash_is_detected(tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture):
    root = _tree(tmp_path / "mine")
    first = read_image_folder(root)[0]
    entry = _entry(cache)
    forged = first.clone()
    forged[0, 0, 0, 0] ^= 1
    save_file({"pixels": forged}, str(entry), metadata={"source": entry.stem, "sha256": pixel_digest(entry.stem, first)})
    with caplog.at_level(logging.WARNING, logger="securedd.data.cache"):
        assert torch.equal(read_image_folder(root)[0], first)
    assert "SHA-256 does not match" in caplog.text


def test_an_entry_copied_from_another_source_is_detected(tmp_path: Path, cache: Path,
                                                        caplog: pytest.LogCaptureFixture):
    mine, other = _tree(tmp_path / "mine"), _tree(tmp_path / "other", seed=1)
    first = read_image_folder(mine)[0]
    entry = _entry(cache)
    read_image_folder(other)
    other_entry = next(p for p in cache.glob("*.safetensors") if p != entry)
    shutil.copyfile(other_entry, entry)  # a valid entry, with a valid hash, of other images
    with caplog.at_level(logging.WARNING, logger="securedd.data.cache"):
        assert torch.equal(read_image_folder(mine)[0], first)
    assert "written for another source" in caplog.text


@pytest.mark.parametrize("content", [b"", b"junk" * 100], ids=["empty", "junk"])
def test_an_unreadable_entry_is_rebuilt(tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture, content: bytes):
    root = _tree(tmp_path / "mine")
    first = read_image_folder(root)[0]
    _entry(cache).write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="securedd.data.cache"):
        assert torch.equal(read_image_folder(root)[0], first)
    assert "unreadable cache file" in caplog.text


def test_an_entry_of_the_wrong_size_is_rebuilt(tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture):
    root = _tree(tmp_path / "mine")
    first = read_image_folder(root)[0]
    entry = _entry(cache)
    short = first[:2].contiguous()
    save_file({"pixels": short}, str(entry), metadata={"source": entry.stem, "sha256": pixel_digest(entry.stem, short)})
    with caplog.at_level(logging.WARNING, logger="securedd.data.cache"):
        assert torch.equal(read_image_folder(root)[0], first)
    assert "not 6 uint8 images" in caplog.text
