"""The npz reader: every malformed array is a DataError naming the file and the array."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from securedd.data import load_dataset, load_splits
from securedd.data.npz import MAX_CLASSES, read_npz
from securedd.errors import DataError


def _arrays(**changes: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    arrays: dict[str, Any] = {
        "x_train": rng.integers(0, 255, (12, 6, 6), dtype=np.uint8), "y_train": np.arange(12) % 3,
        "x_test": rng.integers(0, 255, (6, 6, 6), dtype=np.uint8), "y_test": np.arange(6) % 3,
    }
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def _write(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "d.npz"
    np.savez(path, **_arrays(**changes))
    return path


def test_a_good_file_loads(tmp_path: Path):
    out = read_npz(_write(tmp_path, class_names=np.array(["a", "b", "c"])))
    assert out["x_train"].shape == (12, 1, 6, 6) and out["class_names"] == ["a", "b", "c"]
    assert out["y_train"].dtype == torch.int64


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"y_train": np.arange(11) % 3}, "'y_train' in '.*' has 11 labels, but x_train has 12 images"),
        ({"y_test": np.arange(7) % 3}, "has 7 labels, but x_test has 6 images"),
        ({"y_train": (np.arange(12) % 3).astype(np.float32)}, "whole-number class labels .* float32"),
        ({"y_train": np.arange(12) % 2 == 0}, "whole-number class labels .* bool"),
        ({"y_train": np.eye(3, dtype=np.int64)[np.arange(12) % 3]}, r"one label per image, shape \(N,\); got \(12, 3\)"),
        ({"y_train": np.array([-1] + [0, 1, 2] * 3 + [0, 1])}, "negative label"),
        ({"y_test": np.array([0, 1, 2, 0, 1, 10**9])}, f"label 1000000000; securedd takes at most {MAX_CLASSES}"),
        ({"class_names": np.array(["a", "b"])}, "'class_names' in .* has 2 names, but the labels number 3 classes"),
        ({"class_names": np.array(["a", "b", "c", "d"])}, "has 4 names, but the labels number 3"),
        ({"class_names": np.array([["a", "b", "c"]])}, "'class_names' .* 1-D array"),
        ({"x_train": np.full((12, 6, 6), np.nan, np.float32)}, "'x_train' in .* NaN"),
        ({"x_train": np.full((12, 6, 6), 2.0, np.float32)}, r"'x_train' in .* \[2.0, 2.0\]"),
        ({"x_train": np.array(["a"] * 12).reshape(12, 1, 1)}, "'x_train' in .* must hold numbers"),
        ({"x_train": np.zeros((0, 6, 6), np.uint8), "y_train": np.zeros(0, np.int64)}, "holds no images"),
        ({"x_test": np.zeros((6, 5, 5), np.uint8)}, "differ in image shape"),
        ({"y_test": None}, "lacks y_test"),
    ],
)
def test_malformed_arrays_are_named(tmp_path: Path, changes: dict[str, Any], words: str):
    with pytest.raises(DataError, match=words):
        read_npz(_write(tmp_path, **changes))


def test_one_nan_pixel_among_valid_ones_is_refused(tmp_path: Path):
    x = np.random.default_rng(1).random((12, 6, 6)).astype(np.float32)
    x[3, 2, 2] = np.nan
    with pytest.raises(DataError, match="1 NaN value"):
        read_npz(_write(tmp_path, x_train=x))


def test_labels_of_shape_n_by_1_are_one_label_per_image(tmp_path: Path):
    out = read_npz(_write(tmp_path, y_train=(np.arange(12) % 3).reshape(12, 1)))
    assert out["y_train"].tolist() == (np.arange(12) % 3).tolist()


def test_a_huge_label_does_not_build_class_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []
    monkeypatch.setattr("securedd.data.npz._class_names", lambda *a: calls.append(a) or [])
    with pytest.raises(DataError, match="at most"):
        read_npz(_write(tmp_path, y_train=np.array([10**9] + [0] * 11)))
    assert not calls


@pytest.mark.parametrize(
    "content, words",
    [(b"", "not an .npz file"), (b"hello, not a zip", "not an .npz file"),
     (b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", "not an .npz file")],
    ids=["empty", "text", "npy"],
)
def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path, content: bytes, words: str):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=words):
        read_npz(path)


def test_a_plain_npy_file_is_refused(tmp_path: Path):
    path = tmp_path / "d.npz"
    with path.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match="not an .npz file"):
        read_npz(path)


def test_a_truncated_zip_is_refused(tmp_path: Path):
    path = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + data[-22:])  # keeps the end-of-directory record
    with pytest.raises(DataError, match="not (a readable )?.*npz file"):
        read_npz(path)


def test_a_pickled_array_is_refused(tmp_path: Path):
    path = tmp_path / "d.npz"
    np.savez(path, **_arrays(), class_names=np.array([object(), "b", "c"], dtype=object))
    with pytest.raises(DataError, match="not a readable .npz file"):
        read_npz(path)


def test_constant_channel_is_a_clean_error_not_a_nan_artifact(tmp_path: Path):
    # a constant image set: std 0 used to round away the clamp and normalise to NaN
    path = _write(tmp_path, x_train=np.full((12, 6, 6, 3), 128, np.uint8), x_test=np.full((6, 6, 6, 3), 128, np.uint8))
    with pytest.raises(DataError, match="channel 0, 1, 2 of the training images of dataset 'npz:.*' is constant"):
        load_splits(f"npz:{path}")


def test_one_constant_channel_is_named(tmp_path: Path):
    x = np.random.default_rng(2).integers(0, 255, (12, 6, 6, 3), dtype=np.uint8)
    x[..., 1] = 7
    with pytest.raises(DataError, match="channel 1 of the training images"):
        load_dataset(f"npz:{_write(tmp_path, x_train=x, x_test=x[:6])}")


def test_a_barely_varying_channel_never_gives_a_nan_spec(tmp_path: Path):
    # std just above the floor survives rounding to 4 decimals: finite, positive statistics
    x = np.zeros((12, 6, 6), np.float32)
    x[0, 0, 0] = 0.2
    train = load_dataset(f"npz:{_write(tmp_path, x_train=x)}")
    assert all(s > 0 for s in train.spec.std) and torch.isfinite(train.images).all()
