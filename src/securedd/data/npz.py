"""Reading a custom dataset from one ``.npz`` file, every array checked before use.

The file holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally
``class_names``. Images are uint8 or floats in [0, 1], laid out (N, H, W), (N, H, W, C) or
(N, C, H, W) with 1 or 3 channels; labels are whole numbers in ``[0, num_classes)``, one per
image. Anything else is a :class:`~securedd.errors.DataError` that names the file and the
array, raised before any tensor is built from it.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.npz"
    >>> np.savez(path, x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.array([0, 1, 0, 1]),
    ...          x_test=np.zeros((2, 8, 8), np.uint8), y_test=np.array([1, 0]))
    >>> arrays = read_npz(path)
    >>> arrays["x_train"].shape, arrays["class_names"]
    (torch.Size([4, 1, 8, 8]), ['0', '1'])
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from securedd.errors import DataError

__all__ = ["MAX_CLASSES", "read_npz"]

#: The most classes a custom dataset may have. Labels name classes by number, so one stray
#: huge label (10**9) would otherwise make a billion class names.
MAX_CLASSES = 100_000

_NEEDED = ("x_train", "y_train", "x_test", "y_test")


def check_unit_range(pixels: torch.Tensor, what: str) -> None:
    """Raise a DataError unless every value of ``pixels`` is in [0, 1]; NaN is never in range."""
    if pixels.numel() == 0:
        return
    low, high = torch.aminmax(pixels)  # NaN propagates: a NaN anywhere fails both tests
    if not (bool(low >= 0) and bool(high <= 1)):
        nans = int(torch.isnan(pixels).sum())
        finite = pixels[torch.isfinite(pixels)]
        seen = f"[{float(finite.min())}, {float(finite.max())}]" if finite.numel() else "no finite values"
        raise DataError(
            f"{what} must be uint8 or floats in [0, 1]; got {seen}"
            + (f" and {nans} NaN value(s)" if nans else "")
            + (" and infinite values" if bool(torch.isinf(pixels).any()) else "")
        )


def _to_nchw(array: np.ndarray, key: str, path: Path) -> torch.Tensor:
    if array.dtype.kind not in "uif":
        raise DataError(f"'{key}' in '{path}' must hold numbers (uint8 or float); got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise DataError(f"'{key}' in '{path}' must be images (N,H,W), (N,H,W,C) or (N,C,H,W); got {array.shape}")
    if 0 in array.shape:
        raise DataError(f"'{key}' in '{path}' holds no images (shape {array.shape})")
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    pixels = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    check_unit_range(pixels, f"'{key}' in '{path}'")
    return pixels


def _labels(array: np.ndarray, key: str, path: Path, count: int) -> torch.Tensor:
    if array.dtype.kind not in "iu":
        raise DataError(f"'{key}' in '{path}' must hold whole-number class labels (an integer dtype); "
                        f"got dtype {array.dtype}")
    if array.ndim == 2 and array.shape[1] == 1:  # (N, 1), as some tools save labels
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"'{key}' in '{path}' must be one label per image, shape (N,); got {array.shape} "
                        "(one-hot labels: store their argmax)")
    if len(array) != count:
        raise DataError(f"'{key}' in '{path}' has {len(array)} labels, but x_{key[2:]} has {count} images")
    if len(array) and int(array.min()) < 0:
        raise DataError(f"'{key}' in '{path}' holds a negative label ({int(array.min())}); labels are 0, 1, ...")
    if len(array) and int(array.max()) >= MAX_CLASSES:
        raise DataError(f"'{key}' in '{path}' holds label {int(array.max())}; securedd takes at most "
                        f"{MAX_CLASSES} classes, numbered from 0")
    return torch.from_numpy(array.astype(np.int64))


def _class_names(names: np.ndarray | None, num_classes: int, path: Path) -> list[str]:
    if names is None:
        return [str(i) for i in range(num_classes)]
    if names.dtype.kind not in "USiu" or names.ndim != 1:
        raise DataError(f"'class_names' in '{path}' must be a 1-D array of names; got dtype {names.dtype}, "
                        f"shape {names.shape}")
    if len(names) != num_classes:
        raise DataError(f"'class_names' in '{path}' has {len(names)} names, but the labels number "
                        f"{num_classes} classes (0 to {num_classes - 1}); give one name per class")
    return [str(n) for n in names]


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"npz file '{path}' does not exist")
    if not zipfile.is_zipfile(path):
        raise DataError(f"'{path}' is not an .npz file (a zip archive of arrays, as numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
        raise DataError(f"'{path}' is not a readable .npz file: {exc}") from None
    except MemoryError:
        raise DataError(f"'{path}' declares arrays too large for this machine's memory") from None


def read_npz(path: Path) -> dict[str, Any]:
    """Read ``x_train, y_train, x_test, y_test`` (and optional ``class_names``) from an npz file.

    Returns ``x_*`` as float [0, 1] tensors (N, C, H, W), ``y_*`` as int64 (N,) and
    ``class_names`` as a list with one name per class.

    Raises:
        DataError: the file is not an npz archive, lacks an array, or an array is not what
            the module docstring says (wrong dtype or shape, counts that differ, labels out
            of range, a wrong number of class names, pixels outside [0, 1] or NaN).
    """
    arrays = _load_arrays(path)
    missing = [k for k in _NEEDED if k not in arrays]
    if missing:
        raise DataError(f"npz file '{path}' lacks {', '.join(missing)}; it needs arrays {', '.join(_NEEDED)}")
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        out[f"x_{split}"] = _to_nchw(arrays[f"x_{split}"], f"x_{split}", path)
        out[f"y_{split}"] = _labels(arrays[f"y_{split}"], f"y_{split}", path, out[f"x_{split}"].shape[0])
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        raise DataError(f"x_train and x_test in '{path}' differ in image shape: "
                        f"{tuple(out['x_train'].shape[1:])} and {tuple(out['x_test'].shape[1:])}")
    num_classes = int(max(out["y_train"].max(), out["y_test"].max())) + 1
    out["class_names"] = _class_names(arrays.get("class_names"), num_classes, path)
    return out
