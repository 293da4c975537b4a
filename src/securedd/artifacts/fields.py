"""Every metadata field of an artifact, checked by type and range before it is used.

:func:`check_metadata` checks the JSON document (schema, method, dataset spec, IPC, seed,
labels, payload, decoder...) and returns the dataset spec; :func:`check_layout` checks
that the tensors the header declares fit it (shapes, dtypes, ``N = num_classes * ipc``) and
that a decoder cannot blow the set up beyond :data:`MAX_DECODED_ELEMENTS`;
:func:`check_values` checks the tensors' values (finite images, labels in range). The
writer runs the same checks, so whatever securedd writes, it reads back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from securedd.data.spec import DatasetSpec
from securedd.errors import ArtifactError

__all__ = ["DECODER_KINDS", "MAX_DECODED_ELEMENTS", "check_layout", "check_metadata", "check_values"]

SCHEMA_VERSION = 1
MAX_DECODED_ELEMENTS = 2**30  # 4 GiB of float32 training images
DECODER_KINDS = ("tiles",)
PAYLOAD_DTYPES = {"float32": "F32", "float16": "F16"}
_FIELDS = {"schema", "method", "dataset", "ipc", "seed", "num_images", "label_kind", "image_space", "payload",
           "config", "privacy", "info", "versions", "decoder", "evaluation", "sha256"}
_REQUIRED = ("schema", "method", "dataset", "ipc", "seed", "sha256", "label_kind", "versions")
_SPEC_FIELDS = ["channels", "class_names", "dsa_strategy", "height", "mean", "name", "num_classes", "std", "width"]
_DECODER_FIELDS = {"kind", "factor", "images_per_stored", "stored_ipc", "decoded_ipc", "decoded_images"}
_SHA = re.compile(r"[0-9a-f]{64}")


def _int(value: object, where: str, field: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ArtifactError(f"{where}: metadata field '{field}' must be an integer in [{lo}, {hi}]; got {value!r}")
    return value


def _str(value: object, where: str, field: str, longest: int = 4096) -> str:
    if not isinstance(value, str) or len(value) > longest:
        raise ArtifactError(f"{where}: metadata field '{field}' must be a string of at most {longest} characters")
    return value


def _floats(value: object, where: str, field: str, n: int, *, positive: bool) -> list[float]:
    if not isinstance(value, list) or len(value) != n or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
            for v in value):
        rule = "finite numbers > 0" if positive else "finite numbers"
        raise ArtifactError(f"{where}: metadata field '{field}' must be {n} {rule} (one per channel); got {value!r}")
    return [float(v) for v in value]


def _spec(value: object, where: str) -> DatasetSpec:
    if not isinstance(value, dict) or sorted(value) != _SPEC_FIELDS:
        raise ArtifactError(f"{where}: metadata field 'dataset' must hold exactly {', '.join(_SPEC_FIELDS)}")
    channels = _int(value["channels"], where, "dataset.channels", 1, 64)
    num_classes = _int(value["num_classes"], where, "dataset.num_classes", 1, 100_000)
    names = value["class_names"]
    if not isinstance(names, list) or len(names) != num_classes or not all(isinstance(c, str) for c in names):
        raise ArtifactError(f"{where}: metadata field 'dataset.class_names' must list {num_classes} names")
    return DatasetSpec(
        name=_str(value["name"], where, "dataset.name"), channels=channels,
        height=_int(value["height"], where, "dataset.height", 1, 4096),
        width=_int(value["width"], where, "dataset.width", 1, 4096), num_classes=num_classes,
        class_names=tuple(names), mean=tuple(_floats(value["mean"], where, "dataset.mean", channels, positive=False)),
        std=tuple(_floats(value["std"], where, "dataset.std", channels, positive=True)),
        dsa_strategy=_str(value["dsa_strategy"], where, "dataset.dsa_strategy", 256))


def _decoder(value: object, meta: Mapping[str, Any], spec: DatasetSpec, where: str) -> None:
    if not isinstance(value, dict) or not {"kind", "factor"} <= set(value) <= _DECODER_FIELDS:
        raise ArtifactError(f"{where}: metadata field 'decoder' must hold 'kind' and 'factor' (and only "
                            f"{', '.join(sorted(_DECODER_FIELDS))})")
    if not isinstance(value["kind"], str) or value["kind"] not in DECODER_KINDS:
        raise ArtifactError(f"{where}: decoder kind {value['kind']!r} is unknown; securedd decodes "
                            f"{', '.join(DECODER_KINDS)}")
    side = min(spec.height, spec.width)  # a tile holds at least one pixel
    factor = _int(value["factor"], where, "decoder.factor", 1, side)
    per = factor * factor
    implied = {"images_per_stored": per, "stored_ipc": meta["ipc"], "decoded_ipc": meta["ipc"] * per,
               "decoded_images": meta["ipc"] * per * spec.num_classes}
    for key, want in implied.items():
        if key in value and value[key] != want:
            raise ArtifactError(f"{where}: metadata field 'decoder.{key}' is {value[key]!r} but factor {factor} "
                                f"and IPC {meta['ipc']} give {want}")
    decoded = implied["decoded_images"] * math.prod(spec.shape)
    if decoded > MAX_DECODED_ELEMENTS:
        raise ArtifactError(f"{where}: the decoder would expand the set to {decoded} values, more than the "
                            f"{MAX_DECODED_ELEMENTS} securedd decodes")


def check_metadata(meta: object, where: str) -> DatasetSpec:
    """Check every field of the securedd metadata by type and range; return its dataset spec.

    Raises:
        ArtifactError: a missing, unknown, mistyped or out-of-range field, named.
    """
    if not isinstance(meta, dict):
        raise ArtifactError(f"{where}: the securedd metadata is not a JSON object")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise ArtifactError(f"{where}: the metadata lacks {', '.join(missing)}: not a complete securedd artifact")
    unknown = sorted(set(meta) - _FIELDS)
    if unknown:
        raise ArtifactError(f"{where}: unknown metadata field(s) {', '.join(unknown)}: not written by this securedd")
    if meta["schema"] != SCHEMA_VERSION or isinstance(meta["schema"], bool):
        raise ArtifactError(
            f"{where}: schema version {meta['schema']!r} is not supported (this securedd reads {SCHEMA_VERSION}); "
            "upgrade securedd or re-create the artifact")
    if not isinstance(meta["sha256"], str) or not _SHA.fullmatch(meta["sha256"]):
        raise ArtifactError(f"{where}: metadata field 'sha256' must be 64 lower-case hex digits")
    _str(meta["method"], where, "method", 64)
    spec = _spec(meta["dataset"], where)
    _int(meta["ipc"], where, "ipc", 1, 1_000_000)
    _int(meta["seed"], where, "seed", -(2**63), 2**64 - 1)
    if meta["label_kind"] not in ("hard", "soft"):
        raise ArtifactError(f"{where}: metadata field 'label_kind' must be 'hard' or 'soft'; got {meta['label_kind']!r}")
    payload = meta.get("payload", "float32")
    if not isinstance(payload, str) or payload not in PAYLOAD_DTYPES:
        raise ArtifactError(f"{where}: metadata field 'payload' must be one of {', '.join(PAYLOAD_DTYPES)}")
    if "num_images" in meta:
        _int(meta["num_images"], where, "num_images", 0, 2**40)
    _str(meta.get("image_space", ""), where, "image_space")
    for key in ("config", "info", "versions", "evaluation"):
        if key in meta and not isinstance(meta[key], dict):
            raise ArtifactError(f"{where}: metadata field '{key}' must be a JSON object")
    if not all(isinstance(v, str) for v in meta["versions"].values()):
        raise ArtifactError(f"{where}: metadata field 'versions' must map names to version strings")
    if meta.get("privacy") is not None and not isinstance(meta["privacy"], dict):
        raise ArtifactError(f"{where}: metadata field 'privacy' must be a JSON object or null")
    if meta.get("decoder") is not None:
        _decoder(meta["decoder"], meta, spec, where)
    return spec


def check_layout(meta: Mapping[str, Any], spec: DatasetSpec, shapes: Mapping[str, tuple[str, tuple[int, ...]]],
                 where: str) -> None:
    """Check the declared tensors (name -> (safetensors dtype, shape)) against the metadata.

    ``images`` must be (num_classes * ipc, C, H, W) in the payload's dtype; hard labels
    (N,) int64, soft labels (N, num_classes) in the payload's dtype; ``lrs`` 1-D float32.
    """
    if "images" not in shapes or "labels" not in shapes:
        raise ArtifactError(f"{where}: the file lacks the 'images' or 'labels' tensor")
    payload = PAYLOAD_DTYPES[meta.get("payload", "float32")]
    n = spec.num_classes * meta["ipc"]
    want = {"images": (payload, (n, *spec.shape)),
            "labels": ("I64", (n,)) if meta["label_kind"] == "hard" else (payload, (n, spec.num_classes))}
    for name, (dtype, shape) in want.items():
        if shapes[name] != (dtype, shape):
            got_dtype, got_shape = shapes[name]
            raise ArtifactError(f"{where}: tensor '{name}' is {got_dtype} {list(got_shape)} but the metadata "
                                f"({spec.num_classes} classes x IPC {meta['ipc']}, {meta['label_kind']} labels, "
                                f"{meta.get('payload', 'float32')} payload) needs {dtype} {list(shape)}")
    if meta.get("num_images", n) != n:
        raise ArtifactError(f"{where}: metadata field 'num_images' is {meta['num_images']} but the set has {n} images")
    if "lrs" in shapes and (shapes["lrs"][0] != "F32" or len(shapes["lrs"][1]) != 1):
        raise ArtifactError(f"{where}: tensor 'lrs' must be 1-D float32; got {shapes['lrs'][0]} {list(shapes['lrs'][1])}")


def check_values(tensors: Mapping[str, torch.Tensor], spec: DatasetSpec, where: str) -> None:
    """Check the values: finite images, lrs and soft labels; hard labels in ``[0, num_classes)``."""
    for name, t in tensors.items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            raise ArtifactError(f"{where}: tensor '{name}' holds NaN or infinite values; refusing it")
    labels = tensors["labels"]
    if not labels.is_floating_point() and labels.numel() and (
            int(labels.min()) < 0 or int(labels.max()) >= spec.num_classes):
        raise ArtifactError(f"{where}: hard labels must be integers in [0, {spec.num_classes}); got values in "
                            f"[{int(labels.min())}, {int(labels.max())}]")
