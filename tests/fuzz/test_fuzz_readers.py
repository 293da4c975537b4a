"""Fuzz the dataset readers (npz files and ImageFolder trees) and the TOML config loader.

Allowed outcomes: a clean securedd error, or a load whose result keeps the readers'
promises (finite pixels in [0, 1] before normalisation, labels in range, one class name
per class).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from securedd.config import RunConfig, load_config
from securedd.data import load_dataset
from tests.fuzz.harness import fuzz, outcome
from tests.fuzz.test_fuzz_artifact import _random

DTYPES = st.sampled_from([np.uint8, np.int64, np.int8, np.float32, np.float64, np.bool_])


def _array(draw: st.DrawFn, max_dims: int = 4) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6))
    return draw(hnp.arrays(draw(DTYPES), shape))


def _valid_npz(draw: st.DrawFn) -> dict[str, np.ndarray]:
    classes = draw(st.integers(1, 4))
    arrays = {}
    for split in ("train", "test"):
        n = draw(st.integers(classes, 3 * classes))
        arrays[f"x_{split}"] = draw(hnp.arrays(np.uint8, (n, 4, 4)))
        arrays[f"y_{split}"] = np.arange(n) % classes
    return arrays


def _check_loaded(data) -> None:  # type: ignore[no-untyped-def]
    assert data.images.isfinite().all(), "non-finite pixels loaded"
    k = data.spec.num_classes
    assert len(data.spec.class_names) == k and len(data.labels) == len(data.images)
    assert len(data.labels) == 0 or (0 <= int(data.labels.min()) and int(data.labels.max()) < k)
    assert all(s > 0 for s in data.spec.std), "a zero standard deviation loaded"


@fuzz
@given(data=st.data())
def test_an_npz_file_loads_correctly_or_is_refused_cleanly(tmp_path: Path, data) -> None:
    draw = data.draw
    arrays = _valid_npz(draw)
    kind = draw(st.sampled_from(["valid", "field", "drop", "names", "bytes", "labels"]))
    if kind == "field":
        arrays[draw(st.sampled_from(sorted(arrays)))] = _array(draw)
    elif kind == "drop":
        arrays.pop(draw(st.sampled_from(sorted(arrays))))
    elif kind == "names":
        arrays["class_names"] = np.array(draw(st.lists(st.text(max_size=5), max_size=6)), dtype=str)
    elif kind == "labels":
        arrays["y_train"] = np.array(draw(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=6)))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    raw = buffer.getvalue()
    if kind == "bytes":
        raw = _random(raw, draw)
    path = tmp_path / "data.npz"
    path.write_bytes(raw)
    loaded = outcome("npz reader", lambda: load_dataset(f"npz:{path}", draw(st.sampled_from(["train", "test"]))))
    if loaded is not None:
        _check_loaded(loaded)


def _png(draw: st.DrawFn) -> bytes:
    mode = draw(st.sampled_from(["L", "RGB"]))
    size = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    buffer = io.BytesIO()
    Image.new(mode, size, color=draw(st.integers(0, 255)) if mode == "L" else (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


@fuzz
@given(data=st.data())
def test_an_image_folder_loads_correctly_or_is_refused_cleanly(tmp_path: Path, data) -> None:
    draw = data.draw
    root = tmp_path / "tree"
    shutil.rmtree(root, ignore_errors=True)
    shared = draw(st.lists(st.sampled_from(["cat", "dog", "eel"]), min_size=1, max_size=3, unique=True))
    for split in ("train", "test"):
        classes = shared if draw(st.booleans()) else draw(st.lists(st.sampled_from(["cat", "dog", "eel"]), min_size=1,
                                                                   max_size=3, unique=True))
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(draw(st.integers(0, 3))):
                kind = draw(st.sampled_from(["png"] * 12 + ["corrupt", "empty", "truncated", "dir", "loop"]))
                target = folder / f"{i}.png"
                if kind == "png":
                    target.write_bytes(_png(draw))
                elif kind == "corrupt":
                    target.write_bytes(_random(_png(draw), draw))
                elif kind == "empty":
                    target.write_bytes(b"")
                elif kind == "truncated":
                    png = _png(draw)
                    target.write_bytes(png[: draw(st.integers(0, len(png) - 1))])
                elif kind == "dir":
                    target.mkdir()
                else:
                    target.symlink_to(target)
    loaded = outcome("imagefolder reader", lambda: load_dataset(f"imagefolder:{root}", "train"))
    if loaded is not None:
        _check_loaded(loaded)


TOML_VALUE = st.recursive(
    st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans(), st.text(max_size=12)),
    lambda inner: st.lists(inner, max_size=3), max_leaves=8)
PLAUSIBLE = {"seed": st.integers(0, 9), "model": st.sampled_from(["convnet", "convnet_tiny", "mlp"]),
             "name": st.sampled_from(["digits", "dc", "dm", "random"]), "ipc": st.integers(-1, 10),
             "iterations": st.integers(-1, 100), "lr_img": st.floats(-1, 10, allow_nan=False),
             "batch_real": st.integers(-1, 256), "runs": st.integers(-1, 5), "epochs": st.integers(-1, 300),
             "dsa": st.booleans(), "download": st.booleans()}
SECTIONS = {"": ["seed", "model", "device", "out"], "data": ["name", "root", "download", "batch_real"],
            "method": ["name", "ipc", "iterations", "lr_img", "batch_real", "embed_steps", "checkpoint_every"],
            "eval": ["runs", "epochs", "models", "lr", "dsa"]}


def _toml_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else "0.0"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return str(value)


@fuzz
@given(data=st.data())
def test_a_toml_config_builds_or_is_refused_cleanly(tmp_path: Path, data) -> None:
    draw = data.draw
    kind = draw(st.sampled_from(["fields", "fields", "bytes", "deep"]))
    if kind == "deep":
        depth = draw(st.integers(100, 50_000))
        text = "seed = " + "[" * depth + "]" * depth + "\n"
    else:
        lines = []
        for section, keys in SECTIONS.items():
            if section:
                lines.append(f"[{section}]")
            for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys))):
                value = draw(PLAUSIBLE[key]) if key in PLAUSIBLE and draw(st.booleans()) else draw(TOML_VALUE)
                lines.append(f"{key} = {_toml_literal(value)}")
        text = "\n".join(lines) + "\n"
        if kind == "bytes":
            text = _random(text.encode(), draw).decode("utf-8", "replace")
    path = tmp_path / "run.toml"
    path.write_text(text)
    cfg = outcome("toml config", lambda: load_config(path))
    assert cfg is None or isinstance(cfg, RunConfig)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECUREDD_OFFLINE", "1")
