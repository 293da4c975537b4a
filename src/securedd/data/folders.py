"""Reading image folders into uint8 pixel tensors, each file checked, with a tensor cache.

Every file with an image suffix is checked: a directory or other non-file named like an
image (``x.png/``), a symbolic link that loops or dangles, an empty file, a file PIL cannot
identify or decode (corrupt, truncated) and a decompression bomb (more than
:data:`MAX_IMAGE_PIXELS` pixels declared) are each a *bad image*. By default the first bad
images are named in a :class:`~securedd.errors.DataError`, raised before any image is
decoded where the header already tells; with ``skip_bad=True`` (``--skip-bad-images``) they
are left out and their number is logged as a warning.

Decoded tensors are cached (:mod:`securedd.data.cache`), keyed by the folder's path, file
names, sizes and modification times, so a changed folder is read again, and checked against
a stored SHA-256, so a changed cache file is decoded again.
"""

from __future__ import annotations

import hashlib
import logging
import stat
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from securedd.data.cache import read_cached, write_cached
from securedd.data.npz import read_npz
from securedd.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS", "read_image_folder", "read_npz"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

#: The most pixels (width x height) one image may declare: 8192 x 8192. Larger headers are
#: refused before decoding, as decompression bombs (PIL's own limit is far higher).
MAX_IMAGE_PIXELS = 8192 * 8192

#: Bad images named in one error message (the rest are counted).
_SHOWN = 5

#: Files modified this recently are not cached: a file system's timestamps can be too coarse
#: to tell a rewrite within the same tick from the original (git's "racy" entries).
RACY_SECONDS = 2.0


@dataclass(frozen=True)
class _Entry:
    """One image file of the folder, as listed."""

    path: Path
    label: int
    size: int
    mtime_ns: int


Bad = tuple[Path, str]  # a bad image and what is wrong with it


def _list_files(folder: Path, class_names: list[str]) -> tuple[list[_Entry], list[Bad]]:
    """The image files of each class folder, and the bad ones (not files, loops, empty)."""
    files: list[_Entry] = []
    bad: list[Bad] = []
    for label, name in enumerate(class_names):
        try:
            paths = sorted((folder / name).iterdir())
        except OSError as exc:
            raise DataError(f"cannot list the class folder '{folder / name}': {exc.strerror or exc}") from None
        for path in paths:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                info = path.stat()
            except OSError as exc:  # a symbolic link that loops or points nowhere
                bad.append((path, f"cannot be opened: {exc.strerror or exc}"))
                continue
            if stat.S_ISDIR(info.st_mode):
                bad.append((path, "is a directory, not an image file"))
            elif not stat.S_ISREG(info.st_mode):
                bad.append((path, "is not a regular file"))
            elif info.st_size == 0:
                bad.append((path, "is empty (0 bytes)"))
            else:
                files.append(_Entry(path, label, info.st_size, info.st_mtime_ns))
    return files, bad


def _fingerprint(files: list[_Entry], channels: int | None, size: tuple[int, int] | None) -> tuple[str, bool]:
    """The cache key of ``files``, and whether all of them are old enough for it to be trusted."""
    digest = hashlib.sha256(f"v1|{channels}|{size}".encode())
    newest = 0
    for entry in files:
        newest = max(newest, entry.mtime_ns)
        digest.update(f"{entry.path}|{entry.label}|{entry.size}|{entry.mtime_ns}\n".encode())
    settled = time.time_ns() - newest > RACY_SECONDS * 1e9
    return digest.hexdigest()[:32], settled


class _TooLarge(ValueError):
    """An image header declares more than MAX_IMAGE_PIXELS pixels."""


def _open(path: Path) -> Image.Image:
    """``path`` opened (header only), refused if it declares more than MAX_IMAGE_PIXELS."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(path)
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise _TooLarge(f"declares {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS} allowed "
                         "(a decompression bomb?)")
    return image


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _TooLarge):
        return str(exc)
    return f"cannot be read as an image ({type(exc).__name__}: {exc})"


def _probe(files: list[_Entry]) -> tuple[list[tuple[_Entry, str, tuple[int, int]]], list[Bad]]:
    """Each file's mode and (width, height) from its header, and the files whose header is bad."""
    good, bad = [], []
    for entry in files:
        try:
            with _open(entry.path) as image:
                good.append((entry, image.mode, image.size))
        except Exception as exc:  # PIL raises many types (OSError, SyntaxError, struct.error...) on bad files
            bad.append((entry.path, _reason(exc)))
    return good, bad


def _layout(probed: list[tuple[_Entry, str, tuple[int, int]]], channels: int | None,
            size: tuple[int, int] | None) -> tuple[int, tuple[int, int]]:
    if channels is None:
        modes = {mode for _, mode, _ in probed[:64]}
        channels = 1 if modes <= {"L", "1", "I;16", "I"} else 3
    if size is None:
        width, height = Counter(wh for _, _, wh in probed[:256]).most_common(1)[0][0]
        size = (height, width)
    return channels, size


def _decode(files: list[_Entry], channels: int, size: tuple[int, int]) -> tuple[torch.Tensor, list[int], list[Bad]]:
    """uint8 pixels (n, C, H, W) of the files that decode, their indices, and the ones that do not."""
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(files), size[0], size[1], channels), dtype=np.uint8)
    kept: list[int] = []
    bad: list[Bad] = []
    for i, entry in enumerate(files):
        try:
            with _open(entry.path) as opened:
                img = opened.convert(mode)
                if img.size != (size[1], size[0]):
                    img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                out[len(kept)] = np.asarray(img).reshape(size[0], size[1], channels)
        except Exception as exc:  # truncated or corrupt data surfaces only when decoding
            bad.append((entry.path, _reason(exc)))
            continue
        kept.append(i)
    return torch.from_numpy(out[: len(kept)]).permute(0, 3, 1, 2).contiguous(), kept, bad


def _handle_bad(bad: list[Bad], folder: Path, skip_bad: bool) -> None:
    if not bad:
        return
    shown = "; ".join(f"'{path}' {reason}" for path, reason in bad[:_SHOWN])
    more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    if not skip_bad:
        raise DataError(
            f"{len(bad)} file(s) in image folder '{folder}' cannot be used as images: {shown}{more}. "
            "Remove or replace them, or pass --skip-bad-images (data.skip_bad_images=true) to leave them out."
        )
    log.warning("skipped %d bad image file(s) in %s: %s%s", len(bad), folder, shown, more)


def _class_folders(folder: Path, class_names: list[str] | None) -> list[str]:
    if not folder.is_dir():
        raise DataError(f"image folder '{folder}' does not exist")
    try:
        found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    except OSError as exc:
        raise DataError(f"cannot list the image folder '{folder}': {exc.strerror or exc}") from None
    if class_names is None:
        class_names = found
    missing = [c for c in class_names if c not in found]
    if missing or not class_names:
        raise DataError(
            f"image folder '{folder}' must hold one sub-folder per class; "
            f"missing: {', '.join(missing) or 'all'} (found: {', '.join(found) or 'none'})"
        )
    return class_names


def read_image_folder(
    folder: Path,
    class_names: list[str] | None = None,
    *,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    skip_bad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read ``folder/<class>/<image>`` into ``(uint8 pixels (N,C,H,W), labels, class names)``.

    ``class_names`` fixes the label order (default: sorted sub-folder names). ``channels``
    and ``size`` (H, W) force a layout; by default grey-scale folders give 1 channel and
    images are resized to the most common size. ``skip_bad`` leaves bad images out (with a
    logged count) instead of raising.

    Raises:
        DataError: the folder or a class folder is missing, a class has no usable image,
            or (without ``skip_bad``) a file is a bad image (see the module docstring).
    """
    class_names = _class_folders(folder, class_names)
    files, bad = _list_files(folder, class_names)
    _handle_bad(bad, folder, skip_bad)
    key, settled = _fingerprint(files, channels, size)
    pixels = read_cached(key, len(files)) if settled and files else None
    if pixels is None:
        probed, bad = _probe(files)
        _handle_bad(bad, folder, skip_bad)
        complete = not bad  # the cache holds only sources whose every listed file decoded
        if probed:
            log.info("decoding %d images from %s", len(probed), folder)
            channels, size = _layout(probed, channels, size)
            pixels, kept, bad = _decode([entry for entry, _, _ in probed], channels, size)
            _handle_bad(bad, folder, skip_bad)
            files, complete = [probed[i][0] for i in kept], complete and not bad
        if pixels is None or not files:
            raise DataError(f"image folder '{folder}' holds no usable images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if not settled:
            log.info("not caching %s: some of its files changed less than %gs ago", folder, RACY_SECONDS)
        elif complete:
            write_cached(key, pixels)
    labels = torch.tensor([entry.label for entry in files], dtype=torch.int64)
    counts = torch.bincount(labels, minlength=len(class_names)).tolist()
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        raise DataError(f"class folder(s) {', '.join(repr(str(folder / n)) for n in empty)} hold no usable images; "
                        "every class needs at least one")
    return pixels, labels, class_names
