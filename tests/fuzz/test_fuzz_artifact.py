"""Fuzz the artifact loader: random and structured corruptions of a valid file.

Allowed outcomes: a clean :class:`~securedd.errors.ArtifactError`, or a load of bytes that
are exactly the ones written. A load of a changed file fails the target.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from securedd.artifacts import load_artifact, save_artifact
from securedd.data import dataset_spec
from tests.fuzz.harness import fuzz, outcome


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("artifact") / "set.safetensors"
    gen = torch.Generator().manual_seed(0)
    save_artifact(path, torch.randn(10, 1, 8, 8, generator=gen), torch.arange(10), spec=dataset_spec("digits"),
                  method="random", ipc=1, seed=0)
    return path.read_bytes()


def _split(data: bytes) -> tuple[dict, bytes, bytes]:
    (size,) = struct.unpack("<Q", data[:8])
    raw = data[8 : 8 + size]
    return json.loads(raw), raw, data[8 + size :]


def _pack(header_text: bytes, body: bytes) -> bytes:
    return struct.pack("<Q", len(header_text)) + header_text + body


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
JSON = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=20)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _structured(data: bytes, draw: st.DrawFn) -> bytes:
    header, raw, body = _split(data)
    meta = json.loads(header["__metadata__"]["securedd"])
    kind = draw(st.sampled_from(["indent", "duplicate-key", "padding", "swap-tensors", "meta-field", "meta-deep",
                                 "header-deep", "meta-indent", "header-length", "tensor-offsets"]))
    if kind == "indent":
        return _pack(json.dumps(header, indent=draw(st.integers(0, 3))).encode(), body)
    if kind == "duplicate-key":
        text = raw.decode()
        return _pack(('{"__metadata__":{"securedd":"{}"},' + text[1:]).encode(), body)
    if kind == "padding":
        pad = draw(st.integers(0, 64))
        return _pack(raw.rstrip(b" ") + b" " * pad, body)
    if kind == "swap-tensors":
        images, labels = header["images"], header["labels"]
        header["images"], header["labels"] = labels, images
        return _pack(json.dumps(header, separators=(",", ":")).encode(), body)
    if kind == "tensor-offsets":
        name = draw(st.sampled_from(["images", "labels"]))
        start, end = header[name]["data_offsets"]
        shift = draw(st.integers(-(2**20), 2**20))
        header[name]["data_offsets"] = [start + shift, end + draw(st.sampled_from([0, shift]))]
        return _pack(json.dumps(header, separators=(",", ":")).encode(), body)
    if kind == "header-length":
        return struct.pack("<Q", draw(st.integers(0, 2**64 - 1))) + data[8:]
    if kind == "header-deep":
        header["__metadata__"]["x"] = None
        text = json.dumps(header, separators=(",", ":")).replace("null", _deep(draw(st.integers(100, 100_000))))
        return _pack(text.encode(), body)
    if kind == "meta-deep":
        meta["info"] = None
        text = json.dumps(meta, sort_keys=True, separators=(",", ":")).replace("null",
                                                                               _deep(draw(st.integers(100, 100_000))))
    elif kind == "meta-indent":
        text = json.dumps(meta, sort_keys=True, indent=1)
    else:
        key = draw(st.sampled_from(sorted(meta) + ["decoder", "num_classes"]))
        meta[key] = draw(JSON)
        text = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    header["__metadata__"]["securedd"] = text
    return _pack(json.dumps(header, separators=(",", ":")).encode(), body)


def _random(data: bytes, draw: st.DrawFn) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "append"]))
        pos = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del out[pos:]
        else:
            out += draw(st.binary(min_size=1, max_size=64))
    return bytes(out)


@fuzz
@given(data=st.data())
def test_a_corrupted_artifact_is_refused_cleanly_or_is_the_original(tmp_path: Path, original: bytes, data) -> None:
    draw = data.draw
    mutate = draw(st.sampled_from([_random, _structured, lambda d, draw: draw(st.binary(max_size=512))]))
    changed = mutate(original, draw)
    path = tmp_path / "fuzzed.safetensors"
    path.write_bytes(changed)
    art = outcome("artifact loader", lambda: load_artifact(path))
    assert art is None or changed == original, "a changed file loaded"
