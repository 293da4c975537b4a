"""The distilled-set file: one ``.safetensors`` file, verified on load.

Tensors: ``images`` (N, C, H, W) normalised with the stored dataset spec, ``labels``
(int64 hard labels, or float (N, K) target distributions for soft labels), optional
``lrs`` (learned learning rates) and method-specific tensors. The safetensors metadata
holds one key, ``securedd``, whose value is a JSON document: schema version, method and
config, dataset spec, IPC, seed, versions, privacy ledger and a SHA-256 over the
metadata and every tensor. Files are written atomically (:mod:`securedd.store`) and their
header must be in canonical form, so any change to any byte is refused on load.

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
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from securedd.data.spec import DatasetSpec
from securedd.errors import ArtifactError
from securedd.store import atomic_write_bytes
from securedd.version import __version__

__all__ = ["PAYLOADS", "SCHEMA_VERSION", "Artifact", "load_artifact", "save_artifact"]

SCHEMA_VERSION = 1
METADATA_KEY = "securedd"
PAYLOADS = {"float32": torch.float32, "float16": torch.float16}
_REQUIRED = ("schema", "method", "dataset", "ipc", "seed", "sha256", "label_kind", "versions")


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
    digest.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(tensors):
        t = tensors[name]
        digest.update(f"\n{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(_tensor_bytes(t))
    return digest.hexdigest()


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
    blob = st_save(tensors, metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True, separators=(",", ":"))})
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


def _from_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], path: Path | None) -> Artifact:
    extras = {k: v for k, v in tensors.items() if k not in ("images", "labels", "lrs")}
    labels = tensors["labels"]
    labels = labels.float() if labels.is_floating_point() else labels  # a float16 payload is used as float32
    return Artifact(tensors["images"].float(), labels, metadata, tensors.get("lrs"), extras, path)


def _read_header(data: bytes, path: Path) -> dict[str, Any]:
    if len(data) < 8:
        raise ArtifactError(f"{path}: the file is truncated ({len(data)} bytes); it is not a safetensors artifact")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise ArtifactError(f"{path}: the header length ({size} bytes) runs past the end of the file: truncated or corrupted")
    raw = data[8 : 8 + size]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: the header is not valid JSON ({exc}): the file is corrupted") from None
    canonical = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if raw.rstrip(b" ") != canonical or len(raw) - len(canonical) >= 8:
        raise ArtifactError(f"{path}: the header is not in canonical form: the file was altered after it was written")
    if not isinstance(header, dict):
        raise ArtifactError(f"{path}: the header is not a JSON object: the file is corrupted")
    return header


def load_artifact(path: str | Path) -> Artifact:
    """Read and verify an artifact.

    Raises:
        ArtifactError: the file is missing, truncated, corrupted, altered (hash or header
            mismatch), of an unknown schema, or its tensors do not fit its metadata. The
            message names the file and what failed.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such artifact file")
    data = path.read_bytes()
    header = _read_header(data, path)
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"{path}: the tensor data are unreadable ({exc}): truncated or corrupted") from None
    meta_text = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if meta_text is None:
        raise ArtifactError(f"{path}: no securedd metadata: this safetensors file is not a securedd artifact")
    try:
        metadata = json.loads(meta_text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: the securedd metadata is not valid JSON ({exc})") from None
    missing = [k for k in _REQUIRED if k not in metadata]
    if missing:
        raise ArtifactError(f"{path}: the metadata lacks {', '.join(missing)}: not a complete securedd artifact")
    if metadata["schema"] != SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: schema version {metadata['schema']} is not supported (this securedd reads {SCHEMA_VERSION}); "
            "upgrade securedd or re-create the artifact"
        )
    if "images" not in tensors or "labels" not in tensors:
        raise ArtifactError(f"{path}: the file lacks the 'images' or 'labels' tensor")
    actual = compute_sha256(tensors, metadata)
    if actual != metadata["sha256"]:
        raise ArtifactError(
            f"{path}: SHA-256 mismatch (recorded {str(metadata['sha256'])[:16]}..., computed {actual[:16]}...): "
            "the tensors or metadata were changed after the artifact was written"
        )
    try:
        spec = DatasetSpec.from_dict(metadata["dataset"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: the dataset spec in the metadata is invalid ({exc})") from None
    _check_tensors(tensors["images"], tensors["labels"], spec, path)
    return _from_tensors(tensors, metadata, path)
