"""The artifact's bytes: size limits, the canonical safetensors header, streamed tensors.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor names,
dtypes, shapes and byte offsets, plus ``__metadata__``) padded with spaces, then the tensor
bytes. securedd accepts exactly the bytes its writer emits for the content: the header is
rebuilt from what it declares (``__metadata__`` first, tensors in the writer's order with
contiguous offsets, compact JSON, the writer's padding) and must equal the file's header
byte for byte, and the file must end where the last tensor does. Whitespace, duplicate or
reordered keys, other padding and reordered tensor data are all refused.

The header is read and checked before any tensor byte, with a bounded header size; the
file size is checked against a cap (:func:`max_artifact_bytes`) before anything is read.
Tensors are then read one at a time in bounded chunks that feed the SHA-256 as they go,
so loading needs the tensors' memory once, not the file's twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from io import BufferedReader
from math import prod
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from securedd.artifacts.strict_json import loads_strict
from securedd.errors import ArtifactError

__all__ = ["DEFAULT_MAX_BYTES", "DTYPES", "MAX_BYTES_ENV", "MAX_HEADER_BYTES", "BytesSource", "FileSource", "Layout",
           "TensorEntry", "max_artifact_bytes", "read_layout", "read_tensors"]

METADATA_KEY = "securedd"
MAX_HEADER_BYTES = 8 * 2**20
MAX_HEADER_ITEMS = 100_000  # commas in the header outside its strings: a few per tensor
DEFAULT_MAX_BYTES = 2**30
MAX_BYTES_ENV = "SECUREDD_MAX_ARTIFACT_BYTES"
CHUNK = 4 * 2**20
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
ST_DTYPE = {v: k for k, v in DTYPES.items()}
_ENTRY_KEYS = ["dtype", "shape", "data_offsets"]


def max_artifact_bytes(max_bytes: int | None = None) -> int:
    """The largest artifact file read: ``max_bytes``, else ``$SECUREDD_MAX_ARTIFACT_BYTES``, else 1 GiB."""
    if max_bytes is not None:
        return int(max_bytes)
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise ArtifactError(f"{MAX_BYTES_ENV}={text!r} is not a positive number of bytes; unset it or give e.g. "
                            f"{4 * 2**30} for 4 GiB")
    return value


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header declares it; ``start``/``end`` are offsets into the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class Layout:
    """A checked header: the metadata text, tensors in file order, where the data begin."""

    meta_text: str
    entries: tuple[TensorEntry, ...]
    data_start: int

    def entry(self, name: str) -> TensorEntry | None:
        return next((e for e in self.entries if e.name == name), None)


class FileSource:
    """Reads ranges of an open file."""

    def __init__(self, fh: BufferedReader, where: str) -> None:
        self.fh, self.where = fh, where
        self.size = os.fstat(fh.fileno()).st_size

    def read_into(self, offset: int, out: memoryview) -> None:
        self.fh.seek(offset)
        got = 0
        while got < len(out):
            n = self.fh.readinto(out[got:])
            if not n:
                raise ArtifactError(f"{self.where}: the file ended early (it changed while being read)")
            got += n


class BytesSource:
    """Reads ranges of bytes already in memory (e.g. the bytes a signature was checked on)."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.where, self.size = memoryview(data), where, len(data)

    def read_into(self, offset: int, out: memoryview) -> None:
        out[:] = self.data[offset: offset + len(out)]


Source = FileSource | BytesSource


def _read(source: Source, offset: int, n: int) -> bytearray:
    buf = bytearray(n)
    source.read_into(offset, memoryview(buf))
    return buf


def _nonneg_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry(name: str, value: object, where: str) -> TensorEntry:
    if not isinstance(value, dict) or list(value) != _ENTRY_KEYS:
        raise ArtifactError(f"{where}: the header entry of tensor '{name}' is malformed: the file is corrupted")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if dtype not in DTYPES:
        raise ArtifactError(f"{where}: tensor '{name}' has dtype {dtype!r}; securedd artifacts use "
                            f"{', '.join(DTYPES)}")
    if not isinstance(shape, list) or len(shape) > 8 or not all(_nonneg_int(s) for s in shape):
        raise ArtifactError(f"{where}: tensor '{name}' has an invalid shape {shape!r}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_nonneg_int(o) for o in offsets):
        raise ArtifactError(f"{where}: tensor '{name}' has invalid data offsets {offsets!r}")
    entry = TensorEntry(name, str(dtype), tuple(shape), offsets[0], offsets[1])
    if entry.end - entry.start != nbytes(entry):
        raise ArtifactError(f"{where}: tensor '{name}' declares {entry.end - entry.start} bytes but its shape "
                            f"{list(shape)} of {dtype} needs {nbytes(entry)}: the file is corrupted")
    return entry


def nbytes(entry: TensorEntry) -> int:
    """Bytes of the tensor's data."""
    return prod(entry.shape) * DTYPES[entry.dtype].itemsize


def writer_order(dtypes: dict[str, str]) -> list[str]:
    """The order safetensors' writer puts tensors of these names and dtypes in (one-element probe)."""
    probe = st_save({name: torch.zeros(1, dtype=DTYPES[d]) for name, d in dtypes.items()})
    (n,) = struct.unpack("<Q", probe[:8])
    return list(json.loads(probe[8: 8 + n]))


def canonical_header(meta_text: str, entries: list[TensorEntry]) -> bytes:
    """The header bytes the writer emits for this metadata and these tensors (in writer order)."""
    header: dict[str, object] = {"__metadata__": {METADATA_KEY: meta_text}}
    offset = 0
    for e in entries:
        header[e.name] = {"dtype": e.dtype, "shape": list(e.shape), "data_offsets": [offset, offset + nbytes(e)]}
        offset += nbytes(e)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    return text + b" " * (-len(text) % 8)


def read_layout(source: Source, max_bytes: int) -> Layout:
    """Check the file's size, header and layout without reading any tensor data.

    Raises:
        ArtifactError: too large, truncated, a header too long, malformed, not canonical or
            not a securedd artifact, or a file length other than the header declares.
    """
    where = source.where
    if source.size > max_bytes:
        raise ArtifactError(f"{where}: the file has {source.size} bytes, more than the {max_bytes} an artifact may "
                            f"have; refusing to read it (raise the cap with {MAX_BYTES_ENV}=BYTES if the file is "
                            "trusted and this large)")
    if source.size < 8:
        raise ArtifactError(f"{where}: the file is truncated ({source.size} bytes); it is not a safetensors artifact")
    (size,) = struct.unpack("<Q", _read(source, 0, 8))
    if size > MAX_HEADER_BYTES:
        raise ArtifactError(f"{where}: the header claims {size} bytes, more than the {MAX_HEADER_BYTES} a securedd "
                            "header may have: the file is corrupted or not an artifact")
    if size > source.size - 8:
        raise ArtifactError(f"{where}: the header length ({size} bytes) runs past the end of the file: truncated "
                            "or corrupted")
    raw = bytes(_read(source, 8, size))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(f"{where}: the header is not UTF-8 text: the file is corrupted") from None
    header = loads_strict(text.rstrip(" "), what=f"{where}: header", max_items=MAX_HEADER_ITEMS)
    if not isinstance(header, dict):
        raise ArtifactError(f"{where}: the header is not a JSON object: the file is corrupted")
    meta = header.pop("__metadata__", None)
    meta_text = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if not isinstance(meta_text, str):
        raise ArtifactError(f"{where}: no securedd metadata: this safetensors file is not a securedd artifact")
    entries = {name: _entry(name, value, where) for name, value in header.items()}
    ordered = [entries[name] for name in writer_order({n: e.dtype for n, e in entries.items()})]
    if raw != canonical_header(meta_text, ordered) or list(header) != [e.name for e in ordered]:
        raise ArtifactError(f"{where}: the header is not in canonical form (its whitespace, key order, duplicate "
                            "keys, padding or tensor layout differ from what securedd writes): the file was altered "
                            "after it was written")
    expected = 8 + size + sum(nbytes(e) for e in ordered)
    if source.size != expected:
        raise ArtifactError(f"{where}: the file has {source.size} bytes but its header describes {expected}: it is "
                            "truncated or has bytes appended")
    return Layout(meta_text, tuple(ordered), 8 + size)


def _chunks(total: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, total, CHUNK):
        yield lo, min(lo + CHUNK, total)


def read_tensors(source: Source, layout: Layout, digest: hashlib._Hash) -> dict[str, torch.Tensor]:
    """Every tensor, read in sorted name order in bounded chunks that also feed ``digest``.

    ``digest`` is updated exactly as :func:`securedd.artifacts.compute_sha256` does after
    the metadata: each tensor's name, dtype and shape, then its bytes.
    """
    tensors: dict[str, torch.Tensor] = {}
    for e in sorted(layout.entries, key=lambda entry: entry.name):
        dtype = DTYPES[e.dtype]
        digest.update(f"\n{e.name}|{dtype}|{e.shape}|".encode())
        buf = bytearray(nbytes(e))
        view = memoryview(buf)
        for lo, hi in _chunks(len(buf)):
            source.read_into(layout.data_start + e.start + lo, view[lo:hi])
            digest.update(view[lo:hi])
        tensors[e.name] = (torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)).reshape(e.shape)
    return tensors


def open_source(path: Path) -> BufferedReader:
    """Open ``path`` for reading, refusing what is not a regular file."""
    if not path.is_file():
        raise ArtifactError(f"{path}: no such artifact file" if not path.exists() else
                            f"{path}: not a regular file (a folder, device or pipe); give the .safetensors file")
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the artifact ({exc.strerror or exc})") from None
