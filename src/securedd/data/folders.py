"""Reading image folders and ``.npz`` files into [0, 1] pixel tensors, with a tensor cache.

Reading tens of thousands of PNG files takes a while; the decoded tensors are cached in
``$XDG_CACHE_HOME/securedd/tensors`` (or ``~/.cache/...``), keyed by the folder's path,
file names, sizes and modification times, so a changed folder is read again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from securedd.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "read_image_folder", "read_npz"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "securedd" / "tensors"


def _list_files(folder: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    files = []
    for label, name in enumerate(class_names):
        for path in sorted((folder / name).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                files.append((path, label))
    return files


#: Files modified this recently are not cached: a file system's timestamps can be too coarse
#: to tell a rewrite within the same tick from the original (git's "racy" entries).
RACY_SECONDS = 2.0


def _fingerprint(files: list[tuple[Path, int]], channels: int | None,
                 size: tuple[int, int] | None) -> tuple[str, bool]:
    """The cache key of ``files``, and whether all of them are old enough for it to be trusted."""
    digest = hashlib.sha256(f"v1|{channels}|{size}".encode())
    newest = 0
    for path, label in files:
        stat = path.stat()
        newest = max(newest, stat.st_mtime_ns)
        digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    settled = time.time_ns() - newest > RACY_SECONDS * 1e9
    return digest.hexdigest()[:32], settled


def _decode(files: list[tuple[Path, int]], channels: int | None, size: tuple[int, int] | None) -> torch.Tensor:
    first = Image.open(files[0][0])
    if channels is None:
        modes = {Image.open(p).mode for p, _ in files[: min(len(files), 64)]}
        channels = 1 if modes <= {"L", "1", "I;16", "I"} else 3
    if size is None:
        size = Counter(Image.open(p).size for p, _ in files[: min(len(files), 256)]).most_common(1)[0][0]
        size = (size[1], size[0])
    del first
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(files), size[0], size[1], channels), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        with Image.open(path) as opened:
            img = opened.convert(mode)
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            out[i] = np.asarray(img).reshape(size[0], size[1], channels)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def read_image_folder(
    folder: Path,
    class_names: list[str] | None = None,
    *,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read ``folder/<class>/<image>`` into ``(uint8 pixels (N,C,H,W), labels, class names)``.

    ``class_names`` fixes the label order (default: sorted sub-folder names). ``channels``
    and ``size`` (H, W) force a layout; by default grey-scale folders give 1 channel and
    images are resized to the most common size.
    """
    if not folder.is_dir():
        raise DataError(f"image folder '{folder}' does not exist")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if class_names is None:
        class_names = found
    missing = [c for c in class_names if c not in found]
    if missing or not class_names:
        raise DataError(
            f"image folder '{folder}' must hold one sub-folder per class; "
            f"missing: {', '.join(missing) or 'all'} (found: {', '.join(found) or 'none'})"
        )
    files = _list_files(folder, class_names)
    if not files:
        raise DataError(f"image folder '{folder}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    key, settled = _fingerprint(files, channels, size)
    cache = _cache_dir() / f"{key}.safetensors"
    if settled and cache.is_file():
        try:
            return load_file(str(cache))["pixels"], labels, class_names
        except Exception:  # a broken cache entry is rebuilt, never trusted
            log.warning("ignoring unreadable cache file %s", cache)
    log.info("decoding %d images from %s", len(files), folder)
    pixels = _decode(files, channels, size)
    if not settled:
        log.info("not caching %s: some of its files changed less than %gs ago", folder, RACY_SECONDS)
        return pixels, labels, class_names
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        save_file({"pixels": pixels}, str(tmp))
        os.replace(tmp, cache)
    except OSError as exc:
        log.warning("could not write the tensor cache %s: %s", cache, exc)
    return pixels, labels, class_names


def _to_nchw(array: np.ndarray, key: str, path: Path) -> torch.Tensor:
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise DataError(f"'{key}' in '{path}' must be images (N,H,W), (N,H,W,C) or (N,C,H,W); got {array.shape}")
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    pixels = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if pixels.min() < 0 or pixels.max() > 1:
        raise DataError(f"'{key}' in '{path}' must be uint8 or floats in [0, 1]; got [{pixels.min()}, {pixels.max()}]")
    return pixels


def read_npz(path: Path) -> dict[str, object]:
    """Read ``x_train, y_train, x_test, y_test`` (and optional ``class_names``) from an npz file."""
    if not path.is_file():
        raise DataError(f"npz file '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"'{path}' is not a readable .npz file: {exc}") from None
    needed = ["x_train", "y_train", "x_test", "y_test"]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise DataError(f"npz file '{path}' lacks {', '.join(missing)}; it needs arrays {', '.join(needed)}")
    out: dict[str, object] = {}
    labels: dict[str, torch.Tensor] = {}
    for split in ("train", "test"):
        out[f"x_{split}"] = _to_nchw(arrays[f"x_{split}"], f"x_{split}", path)
        out[f"y_{split}"] = labels[split] = torch.from_numpy(arrays[f"y_{split}"].astype(np.int64).reshape(-1))
    num_classes = int(max(labels["train"].max(), labels["test"].max())) + 1
    names = arrays.get("class_names")
    out["class_names"] = [str(n) for n in names] if names is not None else [str(i) for i in range(num_classes)]
    return out
