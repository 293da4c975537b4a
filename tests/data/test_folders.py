"""Image folders: bad image files named or skipped, class folders that must match, empty classes."""

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from securedd.data import load_dataset, load_splits
from securedd.data.folders import read_image_folder
from securedd.errors import DataError


def _tree(root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 4, size: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), "L").save(root / name / f"{j}.png")
    return root


def _png_bytes(tmp_path: Path, size: tuple[int, int]) -> bytes:
    path = tmp_path / "probe.png"
    Image.new("L", size).save(path)
    data = path.read_bytes()
    path.unlink()
    return data


def _corrupt(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)


def _truncate(path: Path) -> None:
    if not path.exists():
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8), "L").save(path)
    path.write_bytes(path.read_bytes()[:60])  # the header survives, the pixel data does not


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _directory(path: Path) -> None:
    path.mkdir()


def _loop(path: Path) -> None:
    os.symlink(path.name, path)  # a link to itself: ELOOP


def _dangling(path: Path) -> None:
    os.symlink("nowhere.png", path)


def _text(path: Path) -> None:
    path.write_text("not an image at all")


FAULTS = {"corrupt": (_corrupt, "cannot be read as an image"), "truncated": (_truncate, "cannot be read as an image"),
          "zero-byte": (_empty, "is empty"), "directory": (_directory, "is a directory"),
          "symlink-loop": (_loop, "cannot be opened"), "dangling-link": (_dangling, "cannot be opened"),
          "text": (_text, "cannot be read as an image")}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_bad_image_is_named_and_can_be_skipped(tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture):
    make, words = FAULTS[fault]
    root = _tree(tmp_path / "mine")
    bad = root / "b" / "x.png"
    make(bad)
    with pytest.raises(DataError, match=f"1 file\\(s\\) in image folder .* '{bad}' {words}.*--skip-bad-images"):
        read_image_folder(root)
    with caplog.at_level(logging.WARNING, logger="securedd.data.folders"):
        pixels, labels, names = read_image_folder(root, skip_bad=True)
    assert pixels.shape == (8, 1, 6, 6) and labels.tolist() == [0] * 4 + [1] * 4 and names == ["a", "b"]
    assert "skipped 1 bad image file(s)" in caplog.text and str(bad) in caplog.text


def test_a_truncated_image_with_a_good_header_fails_while_decoding_and_is_not_cached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = _tree(tmp_path / "mine", size=64)
    _truncate(root / "a" / "1.png")
    with pytest.raises(DataError, match="1.png' cannot be read as an image"):
        read_image_folder(root)
    past = time.time() - 3600
    for path in root.rglob("*.png"):
        os.utime(path, (past, past))
    pixels, labels, _ = read_image_folder(root, skip_bad=True)
    assert pixels.shape[0] == 7 and labels.tolist() == [0] * 3 + [1] * 4
    assert not list((tmp_path / "cache").rglob("*.safetensors"))  # a source with a bad file is never cached


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = _tree(tmp_path / "mine")
    (root / "a" / "bomb.png").write_bytes(_png_bytes(tmp_path, (300, 200)))
    monkeypatch.setattr("securedd.data.folders.MAX_IMAGE_PIXELS", 50_000)
    decoded = []
    monkeypatch.setattr("securedd.data.folders._decode", lambda *a: decoded.append(a))
    with pytest.raises(DataError, match="bomb.png' declares 300x200 pixels, more than the 50000 allowed"):
        read_image_folder(root)
    assert not decoded


def test_pils_own_decompression_bomb_error_is_a_bad_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = _tree(tmp_path / "mine")
    (root / "b" / "bomb.png").write_bytes(_png_bytes(tmp_path, (100, 100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL refuses above twice this, warns above it
    with pytest.raises(DataError, match="bomb.png' cannot be read as an image \\(DecompressionBomb"):
        read_image_folder(root)


def test_many_bad_images_are_counted_and_the_first_named(tmp_path: Path):
    root = _tree(tmp_path / "mine")
    for i in range(8):
        _empty(root / "a" / f"z{i}.png")
    with pytest.raises(DataError, match="8 file\\(s\\) .* and 3 more"):
        read_image_folder(root)


def test_a_class_with_only_bad_images_is_an_error_even_when_skipping(tmp_path: Path):
    root = _tree(tmp_path / "mine", per_class=1)
    _corrupt(root / "b" / "0.png")
    with pytest.raises(DataError, match="mine/b' hold no usable images"):
        read_image_folder(root, skip_bad=True)


def test_skip_bad_images_reaches_the_dataset_loader(tmp_path: Path):
    root = _tree(tmp_path / "mine", per_class=10)
    _loop(root / "a" / "loop.png")
    name = f"imagefolder:{root}"
    with pytest.raises(DataError, match="loop.png' cannot be opened"):
        load_dataset(name)
    train, test = load_splits(name, skip_bad_images=True)
    assert len(train) + len(test) == 20


def test_train_and_test_class_folders_must_match_by_name(tmp_path: Path):
    _tree(tmp_path / "mine" / "train", ("cat", "dog", "emu"))
    _tree(tmp_path / "mine" / "test", ("cat", "emu", "fox"))  # 'dog' missing: 'emu' would get dog's label
    with pytest.raises(DataError, match="same names; only in train/: dog; only in test/: fox"):
        load_dataset(f"imagefolder:{tmp_path / 'mine'}", "test")
    with pytest.raises(DataError, match="only in train/: dog"):
        load_dataset(f"imagefolder:{tmp_path / 'mine'}", "train")


def test_matching_train_and_test_folders_give_the_same_labels(tmp_path: Path):
    _tree(tmp_path / "mine" / "train", ("cat", "dog"))
    _tree(tmp_path / "mine" / "test", ("cat", "dog"))
    train, test = load_splits(f"imagefolder:{tmp_path / 'mine'}")
    assert train.spec.class_names == test.spec.class_names == ("cat", "dog")
    assert test.labels.tolist() == [0] * 4 + [1] * 4


def test_an_empty_class_folder_is_named(tmp_path: Path):
    root = _tree(tmp_path / "mine")
    (root / "c").mkdir()
    with pytest.raises(DataError, match="mine/c' hold no usable images"):
        read_image_folder(root)


def test_constant_images_never_give_a_nan_spec(tmp_path: Path):
    for name in ("a", "b"):
        (tmp_path / "mine" / name).mkdir(parents=True)
        for j in range(3):
            Image.new("L", (5, 5), 90).save(tmp_path / "mine" / name / f"{j}.png")
    with pytest.raises(DataError, match="channel 0 of the training images .* is constant"):
        load_dataset(f"imagefolder:{tmp_path / 'mine'}")
