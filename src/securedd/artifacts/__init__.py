"""The distilled-set file: one ``.safetensors`` file, verified on load.

Tensors: ``images`` (N, C, H, W) normalised with the stored dataset spec, ``labels``
(int64 hard labels, or float (N, K) target distributions for soft labels), optional
``lrs`` (learned learning rates) and method-specific tensors. The safetensors metadata
holds one key, ``securedd``, whose value is a JSON document: schema version, method and
config, dataset spec, IPC, seed, versions, privacy ledger and a SHA-256 over the
metadata and every tensor. Files are written atomically (:mod:`securedd.store`).

Loading accepts exactly the bytes the writer emits for some content (:mod:`.layout`):
a changed byte, whitespace, duplicate or reordered keys, other header padding or tensor
order are refused. Every metadata field is checked by type and range before it is used
(:mod:`.fields`), the file size and header are bounded before they are read, and tensors
stream through the SHA-256. The hash proves the file is whole, not who wrote it; a
signature (:mod:`securedd.secure.signing`) says that.

Example:
    >>> import tempfile, torch
    >>> from securedd.data import dataset_spec
    >>> spec = dataset_spec("digits")
    >>> path = tempfile.mkdtemp() + "/set.safetensors"
    >>> art = save_artifact(path, torch.zeros(10, 1, 8, 8), torch.arange(10), spec=spec,
    ...                     method="random", ipc=1, seed=0)
    >>> load_artifact(path).sha256 == art.sha256
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save

from securedd.artifacts.fields import SCHEMA_VERSION, check_layout, check_metadata, check_values
from securedd.artifacts.layout import (
    DEFAULT_MAX_BYTES,
    MAX_BYTES_ENV,
    METADATA_KEY,
    ST_DTYPE,
    BytesSource,
    FileSource,
    max_artifact_bytes,
    open_source,
    read_layout,
    read_tensors,
)
from securedd.artifacts.strict_json import loads_strict
from securedd.data.spec import DatasetSpec
from securedd.errors import ArtifactError
from securedd.store import atomic_write_bytes
from securedd.version import __version__

__all__ = ["DEFAULT_MAX_BYTES", "MAX_BYTES_ENV", "PAYLOADS", "SCHEMA_VERSION", "Artifact", "load_artifact",
           "load_artifact_bytes", "max_artifact_bytes", "save_artifact"]

PAYLOADS = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class Artifact:
    """A distilled set in memory: tensors plus verified metadata."""

    images: torch.Tensor
    labels: torch.Tensor
    metadata: dict[str, Any]
    lrs: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    path: Path | None = None

    @property
    def spec(self) -> DatasetSpec:
        """The dataset spec the images are normalised with."""
        return DatasetSpec.from_dict(self.metadata["dataset"])

    @property
    def sha256(self) -> str:
        """SHA-256 over the metadata and tensors (the artifact's identity)."""
        return str(self.metadata["sha256"])

    @property
    def soft_labels(self) -> bool:
        """True when ``labels`` are (N, K) float target distributions."""
        return self.labels.is_floating_point()

    @property
    def method(self) -> str:
        return str(self.metadata["method"])

    @property
    def ipc(self) -> int:
        return int(self.metadata["ipc"])

    @property
    def decoder(self) -> dict[str, Any] | None:
        """How stored images decode into training images (multi-formation), or ``None``."""
        return self.metadata.get("decoder")

    @property
    def decoded_ipc(self) -> int:
        """Training images per class after decoding (``ipc`` when nothing is decoded)."""
        return self.ipc * int((self.decoder or {}).get("images_per_stored", 1))

    def ipc_accounting(self) -> dict[str, Any]:
        """Stored IPC (the storage budget), decoded IPC, factor and a one-line summary.

        For an IDC set of 10 stored images per class at factor 2 the summary reads
        ``"IPC 10 stored (decodes to 40 per class, factor 2)"``; for other sets ``"IPC 10"``.
        """
        factor = (self.decoder or {}).get("factor")
        summary = f"IPC {self.ipc}"
        if self.decoded_ipc != self.ipc:
            summary += f" stored (decodes to {self.decoded_ipc} per class{f', factor {factor}' if factor else ''})"
        return {"stored_ipc": self.ipc, "decoded_ipc": self.decoded_ipc, "factor": factor, "summary": summary}

    def hard_labels(self) -> torch.Tensor:
        """(N,) int64 class of each image (arg-max for soft labels)."""
        return self.labels.argmax(1) if self.soft_labels else self.labels


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def compute_sha256(tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> str:
    """SHA-256 over canonical metadata JSON (without ``sha256``) and every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    meta = {k: v for k, v in metadata.items() if k != "sha256"}
    digest.update(_meta_json(meta).encode())
    for name in sorted(tensors):
        t = tensors[name]
        digest.update(f"\n{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(_tensor_bytes(t))
    return digest.hexdigest()


def _meta_json(meta: dict[str, Any]) -> str:
    """The metadata as securedd writes it: sorted keys, compact separators."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"))


def _versions() -> dict[str, str]:
    return {"securedd": __version__, "torch": torch.__version__.split("+")[0]}


def save_artifact(
    path: str | Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    spec: DatasetSpec,
    method: str,
    ipc: int,
    seed: int,
    lrs: torch.Tensor | None = None,
    extras: dict[str, torch.Tensor] | None = None,
    config: dict[str, Any] | None = None,
    privacy: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    decoder: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    payload: str = "float32",
) -> Artifact:
    """Write a distilled set atomically and return it as loaded.

    Args:
        path: the ``.safetensors`` file to write.
        images: (N, C, H, W) normalised with ``spec``.
        labels: (N,) int64 classes or (N, K) float target distributions.
        spec: the dataset spec (stored, so evaluation normalises the test set the same way).
        method, ipc, seed: recorded as given.
        lrs: learned learning rates, if any.
        extras: other method tensors (names must not clash with the above).
        config: the resolved run configuration.
        privacy: the privacy ledger (mechanism, epsilon, delta, rounds) when a defence ran.
        info: further JSON-friendly facts (iterations run, timings...).
        decoder: for multi-formation sets, how stored images decode into training images
            (``kind``, ``factor``, ``images_per_stored``, ``decoded_ipc``...); ``ipc`` stays
            the stored images per class.
        evaluation: training settings the method asks evaluation to use (e.g. CutMix).
        payload: ``float32``, or ``float16`` to store the images (and soft labels) at half
            the size; they load back as float32, rounded to float16's precision.
    """
    _check_tensors(images, labels, spec, Path(path))
    if payload not in PAYLOADS:
        raise ArtifactError(f"payload must be one of {', '.join(PAYLOADS)}; got '{payload}'")
    dtype = PAYLOADS[payload]
    labels = labels.detach().cpu()
    tensors: dict[str, torch.Tensor] = {
        "images": images.detach().cpu().to(dtype).contiguous(),
        "labels": (labels.to(dtype) if labels.is_floating_point() else labels).contiguous(),
    }
    if lrs is not None:
        tensors["lrs"] = lrs.detach().cpu().float().reshape(-1).contiguous()
    for name, t in (extras or {}).items():
        if name in tensors:
            raise ValueError(f"extra tensor name '{name}' clashes with a standard tensor")
        tensors[name] = t.detach().cpu().contiguous()
    metadata: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "method": method,
        "dataset": spec.to_dict(),
        "ipc": int(ipc),
        "seed": int(seed),
        "num_images": int(images.shape[0]),
        "label_kind": "soft" if labels.is_floating_point() else "hard",
        "image_space": "normalised: (pixel in [0,1] - dataset.mean) / dataset.std",
        "payload": payload,
        "config": config or {},
        "privacy": privacy,
        "info": info or {},
        "versions": _versions(),
    }
    if decoder is not None:
        metadata["decoder"] = decoder
    if evaluation is not None:
        metadata["evaluation"] = evaluation
    metadata["sha256"] = compute_sha256(tensors, metadata)
    _check_all(tensors, metadata, str(path))
    blob = st_save(tensors, metadata={METADATA_KEY: _meta_json(metadata)})
    read_layout(BytesSource(blob, str(path)), len(blob))  # the writer's bytes are canonical, or nothing is written
    path = Path(path)
    atomic_write_bytes(path, blob)
    return _from_tensors(tensors, metadata, path)


def _check_tensors(images: torch.Tensor, labels: torch.Tensor, spec: DatasetSpec, path: Path) -> None:
    if images.dim() != 4 or tuple(images.shape[1:]) != spec.shape:
        raise ArtifactError(f"{path}: images must be (N, {', '.join(map(str, spec.shape))}); got {tuple(images.shape)}")
    n = images.shape[0]
    if labels.shape[0] != n:
        raise ArtifactError(f"{path}: {n} images but {labels.shape[0]} labels")
    if labels.is_floating_point():
        if labels.dim() != 2 or labels.shape[1] != spec.num_classes:
            raise ArtifactError(f"{path}: soft labels must be (N, {spec.num_classes}); got {tuple(labels.shape)}")
    elif labels.dim() != 1 or (n and (int(labels.min()) < 0 or int(labels.max()) >= spec.num_classes)):
        raise ArtifactError(f"{path}: hard labels must be (N,) integers in [0, {spec.num_classes})")


def _check_all(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], where: str) -> DatasetSpec:
    """The loader's checks on what is about to be written, so securedd never writes what it would refuse."""
    spec = check_metadata(metadata, where)
    if any(t.dtype not in ST_DTYPE for t in tensors.values()):
        raise ArtifactError(f"{where}: tensor dtypes must be among {', '.join(map(str, ST_DTYPE))}")
    check_layout(metadata, spec, {k: (ST_DTYPE[t.dtype], tuple(t.shape)) for k, t in tensors.items()}, where)
    check_values(tensors, spec, where)
    return spec


def _from_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], path: Path | None) -> Artifact:
    extras = {k: v for k, v in tensors.items() if k not in ("images", "labels", "lrs")}
    labels = tensors["labels"]
    labels = labels.float() if labels.is_floating_point() else labels  # a float16 payload is used as float32
    return Artifact(tensors["images"].float(), labels, metadata, tensors.get("lrs"), extras, path)


def _load(source: FileSource | BytesSource, max_bytes: int | None) -> Artifact:
    where = source.where
    layout = read_layout(source, max_artifact_bytes(max_bytes))
    metadata = loads_strict(layout.meta_text, what=f"{where}: securedd metadata")
    if not isinstance(metadata, dict) or _meta_json(metadata) != layout.meta_text:
        raise ArtifactError(f"{where}: the securedd metadata is not in canonical form (its whitespace, key order or "
                            "number format differ from what securedd writes): the file was altered after it was "
                            "written")
    spec = check_metadata(metadata, where)
    check_layout(metadata, spec, {e.name: (e.dtype, e.shape) for e in layout.entries}, where)
    digest = hashlib.sha256(_meta_json({k: v for k, v in metadata.items() if k != "sha256"}).encode())
    tensors = read_tensors(source, layout, digest)
    actual = digest.hexdigest()
    if actual != metadata["sha256"]:
        raise ArtifactError(
            f"{where}: SHA-256 mismatch (recorded {str(metadata['sha256'])[:16]}..., computed {actual[:16]}...): "
            "the tensors or metadata were changed after the artifact was written"
        )
    check_values(tensors, spec, where)
    return _from_tensors(tensors, metadata, None)


def load_artifact(path: str | Path, *, max_bytes: int | None = None) -> Artifact:
    """Read and verify an artifact.

    Only the bytes :func:`save_artifact` writes for some content load: the size is checked
    before anything is read, then the header (bounded, canonical), then every metadata
    field, then the tensors, streamed through the SHA-256.

    Args:
        path: the ``.safetensors`` file.
        max_bytes: the largest file read (default ``$SECUREDD_MAX_ARTIFACT_BYTES``, else 1 GiB).

    Raises:
        ArtifactError: the file is missing, too large, truncated, corrupted, altered (hash,
            header or metadata not canonical), of an unknown schema, has a metadata field of
            the wrong type or range, or tensors that do not fit its metadata. The message
            names the file and what failed.
    """
    path = Path(path)
    with open_source(path) as fh:
        art = _load(FileSource(fh, str(path)), max_bytes)
    return replace(art, path=path)


def load_artifact_bytes(data: bytes, *, source: str | Path | None = None, max_bytes: int | None = None) -> Artifact:
    """:func:`load_artifact` on bytes already read, e.g. the exact bytes a signature was checked on.

    ``source`` names the file in messages and becomes :attr:`Artifact.path`.
    """
    art = _load(BytesSource(data, str(source) if source is not None else "<artifact bytes>"), max_bytes)
    return replace(art, path=Path(source) if source is not None else None)
