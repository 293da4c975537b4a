"""The decoded-image cache: pixel tensors of an image folder, checked against their source.

Reading tens of thousands of PNG files takes a while, so :func:`read_image_folder
<securedd.data.folders.read_image_folder>` keeps the decoded uint8 pixels in
``$XDG_CACHE_HOME/securedd/tensors`` (or ``~/.cache/...``), one ``.safetensors`` file per
source, named by the source's key (its folder, file names, labels, sizes and modification
times). Each entry also stores that key and a SHA-256 of the key, the tensor's shape and its
bytes. Reading an entry recomputes both: an entry copied from another source, overwritten,
truncated or otherwise changed does not match, is logged and is decoded again (the new
entry replaces it). The hash detects a changed or misplaced file; it is not a signature, so
someone who may write to the cache folder can still forge a matching entry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = ["cache_dir", "pixel_digest", "read_cached", "write_cached"]

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The folder of the decoded-image cache."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "securedd" / "tensors"


def pixel_digest(key: str, pixels: torch.Tensor) -> str:
    """SHA-256 of the source ``key``, the dtype and shape of ``pixels`` and their bytes."""
    digest = hashlib.sha256(f"securedd-tensor-cache-v2|{key}|{pixels.dtype}|{tuple(pixels.shape)}|".encode())
    digest.update(pixels.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _entry(key: str) -> Path:
    return cache_dir() / f"{key}.safetensors"


def read_cached(key: str, count: int) -> torch.Tensor | None:
    """The cached uint8 pixels (count, C, H, W) of source ``key``, or None when there is no
    entry or it does not match its source (logged; the caller decodes again)."""
    path = _entry(key)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            pixels: torch.Tensor = handle.get_tensor("pixels")
    except Exception as exc:  # safetensors raises its own error types on a broken file
        log.warning("ignoring the unreadable cache file %s (%s); decoding the images again", path, exc)
        return None
    problem = None
    if metadata.get("source") != key:
        problem = "it was written for another source"
    elif pixels.dtype != torch.uint8 or pixels.dim() != 4 or pixels.shape[0] != count:
        problem = f"it holds {pixels.dtype} {tuple(pixels.shape)}, not {count} uint8 images"
    elif metadata.get("sha256") != pixel_digest(key, pixels):
        problem = "its SHA-256 does not match its contents"
    if problem is not None:
        log.warning("the cache file %s does not match its source: %s; decoding the images again", path, problem)
        return None
    return pixels


def write_cached(key: str, pixels: torch.Tensor) -> None:
    """Store ``pixels`` as the entry of ``key`` (atomically; a failure is logged, not raised)."""
    path = _entry(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({"pixels": pixels.contiguous()}, tmp,
                      metadata={"source": key, "sha256": pixel_digest(key, pixels)})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        log.warning("could not write the tensor cache %s: %s", path, exc)
