"""Hostile artifacts: files an attacker or a careless tool made, each refused with a clean ArtifactError.

Every forgery below keeps a *valid* SHA-256 (recomputed over the forged content), so what
refuses it is the check under test, not the hash: the canonical form, a metadata field's
type or range, a resource limit or the nesting bound.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from securedd.artifacts import MAX_BYTES_ENV, compute_sha256, load_artifact, load_artifact_bytes, save_artifact
from securedd.artifacts.strict_json import loads_strict, nesting_depth
from securedd.data import dataset_spec
from securedd.errors import ArtifactError

SPEC = dataset_spec("digits")


@pytest.fixture()
def artifact(tmp_path: Path) -> Path:
    images = torch.randn(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "a.safetensors"
    save_artifact(path, images, torch.arange(10).repeat_interleave(2), spec=SPEC, method="random", ipc=2, seed=0,
                  lrs=torch.tensor([0.01, 0.02]))
    return path


def _split(data: bytes) -> tuple[bytes, dict[str, Any], bytes]:
    """(raw header, parsed header, tensor data) of a safetensors file."""
    (n,) = struct.unpack("<Q", data[:8])
    return data[8: 8 + n], json.loads(data[8: 8 + n]), data[8 + n:]


def _join(header: bytes, body: bytes, *, pad: bool = True) -> bytes:
    if pad:
        header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + body


def _meta(path: Path) -> dict[str, Any]:
    return dict(json.loads(_split(path.read_bytes())[1]["__metadata__"]["securedd"]))


def _forge(path: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None, *,
           dump: Any = None) -> None:
    """Rewrite ``path`` with ``meta`` and ``tensors`` through the real writer and a recomputed, valid SHA-256."""
    tensors = tensors if tensors is not None else st_load(path.read_bytes())
    meta = {k: v for k, v in meta.items() if k != "sha256"}
    meta["sha256"] = compute_sha256(tensors, meta)
    text = dump(meta) if dump else json.dumps(meta, sort_keys=True, separators=(",", ":"))
    path.write_bytes(st_save(tensors, metadata={"securedd": text}))


def _refused(path: Path, words: str) -> None:
    with pytest.raises(ArtifactError, match=words):
        load_artifact(path)


# --- canonical form --------------------------------------------------------------------------

def test_reindented_metadata_is_refused(artifact: Path):
    _forge(artifact, _meta(artifact), dump=lambda m: json.dumps(m, sort_keys=True, indent=1))
    _refused(artifact, "metadata is not in canonical form")


def test_unsorted_metadata_keys_are_refused(artifact: Path):
    _forge(artifact, _meta(artifact), dump=lambda m: json.dumps(dict(reversed(m.items())), separators=(",", ":")))
    _refused(artifact, "metadata is not in canonical form")


def test_prepended_duplicate_key_in_the_metadata_is_refused(artifact: Path):
    canonical = json.dumps  # the duplicate comes first, so a plain JSON reader keeps the real value
    _forge(artifact, _meta(artifact), dump=lambda m: '{"method":"evil",' + canonical(
        m, sort_keys=True, separators=(",", ":"))[1:])
    _refused(artifact, "repeats the key 'method'")


def test_prepended_duplicate_key_in_the_header_is_refused(artifact: Path):
    raw, _, body = _split(artifact.read_bytes())
    fake = b'"images":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
    artifact.write_bytes(_join(b"{" + fake + raw.rstrip(b" ")[1:], body))
    _refused(artifact, "repeats the key 'images'")


def test_header_whitespace_is_refused(artifact: Path):
    _, header, body = _split(artifact.read_bytes())
    artifact.write_bytes(_join(json.dumps(header).encode(), body))  # ", " and ": " separators
    _refused(artifact, "header is not in canonical form")


@pytest.mark.parametrize("padding", ["none", "eight more", "tab"])
def test_header_padding_other_than_the_writers_is_refused(artifact: Path, padding: str):
    raw, _, body = _split(artifact.read_bytes())
    text = raw.rstrip(b" ")
    assert text != raw, "the fixture's header is padded (otherwise this test proves nothing)"
    header = {"none": text, "eight more": raw + b" " * 8,
              "tab": text + b"\t" + b" " * (len(raw) - len(text) - 1)}[padding]
    artifact.write_bytes(_join(header, body, pad=False))
    _refused(artifact, "header is not in canonical form")


def _swap_tensor_data(data: bytes, *, reorder_keys: bool) -> bytes:
    """Move the first tensor's bytes to the end of the data section, fixing every offset (a valid safetensors file)."""
    _, header, body = _split(data)
    meta = header.pop("__metadata__")
    names = list(header)
    moved = names[1:] + names[:1]
    new_body, offset, fixed = b"", 0, {}
    for name in moved:
        lo, hi = header[name]["data_offsets"]
        new_body += body[lo:hi]
        fixed[name] = {**header[name], "data_offsets": [offset, offset + hi - lo]}
        offset += hi - lo
    order = moved if reorder_keys else names
    out = {"__metadata__": meta, **{n: fixed[n] for n in order}}
    return _join(json.dumps(out, separators=(",", ":")).encode(), new_body)


@pytest.mark.parametrize("reorder_keys", [False, True])
def test_reordered_tensor_data_is_refused(artifact: Path, reorder_keys: bool):
    forged = _swap_tensor_data(artifact.read_bytes(), reorder_keys=reorder_keys)
    before, after = st_load(artifact.read_bytes()), st_load(forged)
    assert all(torch.equal(before[k], after[k]) for k in before)  # safetensors itself reads the same tensors
    artifact.write_bytes(forged)
    _refused(artifact, "header is not in canonical form")


def test_appended_bytes_are_refused(artifact: Path):
    artifact.write_bytes(artifact.read_bytes() + b"\0" * 8)
    _refused(artifact, "bytes appended")


# --- every metadata field by type and range -----------------------------------------------------

def _set(meta: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        meta = meta[key]
    if value is _DELETE:
        del meta[last]
    else:
        meta[last] = value


_DELETE = object()


@pytest.mark.parametrize("field, value, words", [
    ("dataset.num_classes", "10", "dataset.num_classes' must be an integer"),
    ("dataset.num_classes", 0, "dataset.num_classes' must be an integer in \\[1,"),
    ("dataset.num_classes", 20, "'dataset.class_names' must list 20 names"),
    ("dataset.channels", True, "dataset.channels' must be an integer"),
    ("dataset.height", 10**9, "dataset.height' must be an integer in"),
    ("dataset.mean", [float("nan")], "dataset.mean' must be 1 finite numbers"),
    ("dataset.std", [0.0], "dataset.std' must be 1 finite numbers > 0"),
    ("dataset.std", [-0.3], "dataset.std' must be 1 finite numbers > 0"),
    ("dataset.std", [float("inf")], "dataset.std' must be 1 finite numbers > 0"),
    ("dataset.std", [0.3, 0.3], "dataset.std' must be 1 finite"),
    ("dataset.name", ["digits"], "dataset.name' must be a string"),
    ("dataset.extra", 1, "'dataset' must hold exactly"),
    ("ipc", -1, "'ipc' must be an integer in \\[1,"),
    ("ipc", 2.0, "'ipc' must be an integer"),
    ("ipc", 3, "tensor 'images' is F32 \\[20, 1, 8, 8\\] but the metadata .* needs F32 \\[30, 1, 8, 8\\]"),
    ("seed", "0", "'seed' must be an integer"),
    ("num_images", 21, "'num_images' is 21 but the set has 20"),
    ("label_kind", "soft", "tensor 'labels' is I64 \\[20\\]"),
    ("label_kind", "fuzzy", "'label_kind' must be 'hard' or 'soft'"),
    ("payload", "int8", "'payload' must be one of"),
    ("payload", ["float32"], "'payload' must be one of"),  # found by the fuzz suite: a list is not hashable
    ("payload", "float16", "tensor 'images' is F32 .* needs F16"),
    ("method", 7, "'method' must be a string"),
    ("schema", 2, "schema version 2 is not supported"),
    ("schema", True, "schema version True is not supported"),
    ("versions", ["1"], "'versions' must be a JSON object"),
    ("privacy", "none", "'privacy' must be a JSON object or null"),
    ("hacked", 1, "unknown metadata field\\(s\\) hacked"),
    ("seed", _DELETE, "the metadata lacks seed"),
    ("decoder", {"kind": "warp", "factor": 2}, "decoder kind 'warp' is unknown"),
    ("decoder", {"kind": ["tiles"], "factor": 2}, "decoder kind \\['tiles'\\] is unknown"),
    ("decoder", {"kind": "tiles", "factor": 0}, "'decoder.factor' must be an integer in \\[1, 8\\]"),
    ("decoder", {"kind": "tiles", "factor": 2.5}, "'decoder.factor' must be an integer"),
    ("decoder", {"kind": "tiles", "factor": 2, "images_per_stored": 9}, "'decoder.images_per_stored' is 9"),
    ("decoder", {"kind": "tiles", "factor": 2, "run": "rm -rf"}, "must hold 'kind' and 'factor'"),
    ("decoder", [1], "must hold 'kind' and 'factor'"),
])
def test_every_metadata_field_is_checked_by_type_and_range(artifact: Path, field: str, value: Any, words: str):
    meta = _meta(artifact)
    _set(meta, field, value)
    _forge(artifact, meta)
    _refused(artifact, words)


def test_forged_tiles_decoder_with_factor_300_is_refused_at_once(artifact: Path):
    """A few-kilobyte file whose decoder would cut each 8x8 image into 90,000 tiles (minutes of work)."""
    meta = _meta(artifact)
    meta["decoder"] = {"kind": "tiles", "factor": 300, "images_per_stored": 90000}
    _forge(artifact, meta)
    assert artifact.stat().st_size < 8000
    start = time.perf_counter()
    _refused(artifact, "'decoder.factor' must be an integer in \\[1, 8\\]")
    assert time.perf_counter() - start < 1.0


def test_a_decoder_within_the_spec_still_loads(artifact: Path):
    meta = _meta(artifact)
    meta["decoder"] = {"kind": "tiles", "factor": 2, "images_per_stored": 4, "stored_ipc": 2, "decoded_ipc": 8,
                       "decoded_images": 80}
    _forge(artifact, meta)
    assert load_artifact(artifact).ipc_accounting()["decoded_ipc"] == 8


@pytest.mark.parametrize("tensor, value, words", [
    ("images", float("nan"), "tensor 'images' holds NaN or infinite values"),
    ("images", float("inf"), "tensor 'images' holds NaN or infinite values"),
    ("lrs", float("nan"), "tensor 'lrs' holds NaN"),
    ("labels", 10, "hard labels must be integers in \\[0, 10\\)"),
    ("labels", -1, "hard labels must be integers in \\[0, 10\\)"),
])
def test_non_finite_images_and_out_of_range_labels_are_refused(artifact: Path, tensor: str, value: float, words: str):
    tensors = st_load(artifact.read_bytes())
    tensors[tensor].view(-1)[1] = value
    _forge(artifact, _meta(artifact), tensors)
    _refused(artifact, words)


def test_soft_labels_must_be_finite(tmp_path: Path):
    soft = torch.softmax(torch.randn(10, 10), 1)
    path = save_artifact(tmp_path / "s.safetensors", torch.zeros(10, 1, 8, 8), soft, spec=SPEC, method="sldd",
                         ipc=1, seed=0).path
    assert path is not None
    tensors = st_load(path.read_bytes())
    tensors["labels"][0, 0] = float("nan")
    _forge(path, _meta(path), tensors)
    _refused(path, "tensor 'labels' holds NaN")


def test_save_refuses_what_load_would_refuse(tmp_path: Path):
    with pytest.raises(ArtifactError, match="'decoder.factor' must be an integer in \\[1, 8\\]"):
        save_artifact(tmp_path / "x.safetensors", torch.zeros(10, 1, 8, 8), torch.arange(10), spec=SPEC,
                      method="idc", ipc=1, seed=0, decoder={"kind": "tiles", "factor": 300})
    with pytest.raises(ArtifactError, match="tensor 'images' holds NaN"):
        save_artifact(tmp_path / "x.safetensors", torch.full((10, 1, 8, 8), float("nan")), torch.arange(10),
                      spec=SPEC, method="random", ipc=1, seed=0)
    assert not (tmp_path / "x.safetensors").exists()


# --- nesting ----------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [65, 500, 100_000])
def test_deeply_nested_metadata_is_refused_cleanly(artifact: Path, depth: int):
    meta = _meta(artifact)
    nested = "[" * depth + "]" * depth
    _forge(artifact, meta, dump=lambda m: json.dumps(m, sort_keys=True, separators=(",", ":"))[:-1]
           + ',"zz":' + nested + "}")
    _refused(artifact, f"nested {depth + 1} levels deep")


def test_deeply_nested_header_is_refused_cleanly(artifact: Path):
    _, _, body = _split(artifact.read_bytes())
    header = b'{"__metadata__":{"securedd":"{}"},"x":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    artifact.write_bytes(_join(header, body))
    _refused(artifact, "header: the JSON is nested 200001 levels deep")


def test_nesting_depth_ignores_brackets_in_strings():
    assert nesting_depth('{"a": "[[[[{{{{", "b": [[1]]}') == 3
    assert nesting_depth('"\\"[[[["') == 0
    assert loads_strict('{"a": "[[[["}', what="x") == {"a": "[[[["}


def _depth(value: Any) -> int:
    if isinstance(value, (list, dict)):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((_depth(v) for v in children), default=0)
    return 0


_JSON = st.recursive(st.none() | st.integers() | st.text(alphabet='ab[]{}",\\ \n'),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text('[]{}"\\k'), inner,
                                                                                  max_size=3), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(value=_JSON, block=st.sampled_from([1, 2, 3, 2**18]))
def test_json_shape_matches_the_parsed_depth_and_item_count(value: Any, block: int):
    import securedd.artifacts.strict_json as strict

    text = json.dumps(value, ensure_ascii=False)
    old, strict._BLOCK = strict._BLOCK, block  # blocks as small as one byte: the carry between blocks is exact
    try:
        depth, items = strict.json_shape(text)
    finally:
        strict._BLOCK = old
    assert depth == _depth(value)
    assert items == json.dumps(value, separators=("|", ":"), ensure_ascii=False).count("|") - text.count("|")


def test_a_header_of_many_tiny_items_is_refused_before_parsing(artifact: Path):
    _, _, body = _split(artifact.read_bytes())
    header = b'{"__metadata__":{"securedd":"{}"},"x":[' + b"1," * 200_000 + b"1]}"
    artifact.write_bytes(_join(header, body))
    _refused(artifact, "header: the JSON holds 200002 items \\(at most 100000 allowed\\)")


# --- resource limits --------------------------------------------------------------------------

def test_the_size_cap_is_checked_before_reading(artifact: Path, monkeypatch: pytest.MonkeyPatch):
    size = artifact.stat().st_size
    with pytest.raises(ArtifactError, match=f"has {size} bytes, more than the {size - 1}"):
        load_artifact(artifact, max_bytes=size - 1)
    assert load_artifact(artifact, max_bytes=size).sha256
    monkeypatch.setenv(MAX_BYTES_ENV, str(size - 1))
    _refused(artifact, MAX_BYTES_ENV)
    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    _refused(artifact, f"{MAX_BYTES_ENV}='lots' is not a positive number")


def test_a_folder_or_a_pipe_is_refused_without_reading(tmp_path: Path):
    import os

    (tmp_path / "dir.safetensors").mkdir()
    os.mkfifo(tmp_path / "pipe.safetensors")  # opening a pipe would block until a writer came
    for name in ("dir.safetensors", "pipe.safetensors"):
        _refused(tmp_path / name, "not a regular file")


def test_an_oversized_header_length_is_refused_before_reading_it(tmp_path: Path):
    path = tmp_path / "big-header.safetensors"
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", 64 * 2**20))
        fh.truncate(80 * 2**20)  # sparse: the header length fits the file, but not the header cap
    with pytest.raises(ArtifactError, match="header claims 67108864 bytes, more than"):
        load_artifact(path, max_bytes=2**30)


_JUNK_PROBE = """
import resource, sys, time
from securedd.artifacts import load_artifact
from securedd.errors import ArtifactError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    load_artifact(sys.argv[1], max_bytes=int(sys.argv[2]) if len(sys.argv) > 2 else None)
except ArtifactError as exc:
    print("refused:", exc)
print(time.perf_counter() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.parametrize("cap", ["default", "raised"])
def test_a_2_gib_junk_file_is_refused_within_2_s_and_200_mb(tmp_path: Path, cap: str):
    path = tmp_path / "junk.safetensors"
    with open(path, "wb") as fh:
        fh.write(b"\xff" * 8 if cap == "raised" else b"junk")
        fh.truncate(2 * 2**30)  # sparse: 2 GiB on paper, nothing on disk
    args = [sys.executable, "-c", _JUNK_PROBE, str(path), *([str(4 * 2**30)] if cap == "raised" else [])]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout.splitlines()
    seconds, grown = map(float, out[-1].split())
    assert out[0].startswith("refused:") and "junk.safetensors" in out[0]
    assert seconds < 2.0 and grown < 200 * 2**20, (seconds, grown)


def test_loading_from_bytes_gives_the_same_artifact(artifact: Path):
    data = artifact.read_bytes()
    a, b = load_artifact(artifact), load_artifact_bytes(data, source=artifact)
    assert a.sha256 == b.sha256 and torch.equal(a.images, b.images) and b.path == artifact
    with pytest.raises(ArtifactError, match="<artifact bytes>: the header is not in canonical form"):
        load_artifact_bytes(_join(json.dumps(_split(data)[1]).encode(), _split(data)[2]))


def test_json_constants_survive_in_free_form_fields(artifact: Path):
    """NaN in a free-form field (a diverged loss in ``info``) is written as securedd writes it, and loads."""
    meta = _meta(artifact)
    meta["info"] = {"final_loss": math.nan}
    _forge(artifact, meta)
    assert math.isnan(load_artifact(artifact).metadata["info"]["final_loss"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_reserialisation_loads_only_if_byte_identical(artifact: Path, data: st.DataObject):
    """The header and metadata re-serialised with random separators, indents and key orders (the hash stays
    valid): the only outcomes are the original bytes, which load, or a clean refusal."""
    original = artifact.read_bytes()
    raw, header, body = _split(original)
    meta = json.loads(header["__metadata__"]["securedd"])

    def dump(value: dict[str, Any]) -> str:
        keys = data.draw(st.permutations(sorted(value)))
        indent = data.draw(st.sampled_from([None, 0, 1, 2]))
        seps = data.draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]))
        return json.dumps({k: value[k] for k in keys}, indent=indent, separators=seps)

    header["__metadata__"]["securedd"] = dump(meta)
    text = dump(header).encode()
    pad = data.draw(st.integers(0, 16))
    forged = _join(text + b" " * pad, body, pad=data.draw(st.booleans()))
    path = artifact.with_name("forged.safetensors")
    path.write_bytes(forged)
    if forged == original:
        assert load_artifact(path).sha256 == meta["sha256"]
    else:
        _refused(path, "not in canonical form|repeats the key|bytes appended")
