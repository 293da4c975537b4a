"""Bad data and bad settings on the command line: one clear line, exit 2, and no artifact."""

import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from securedd.artifacts import load_artifact
from securedd.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _npz(path: Path, **changes: object) -> Path:
    rng = np.random.default_rng(0)
    arrays: dict[str, object] = {
        "x_train": rng.integers(0, 255, (12, 6, 6), dtype=np.uint8), "y_train": np.arange(12) % 3,
        "x_test": rng.integers(0, 255, (6, 6, 6), dtype=np.uint8), "y_test": np.arange(6) % 3,
    }
    arrays.update(changes)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _folder(root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8), "L").save(root / name / f"{j}.png")
    return root


def _distill(capsys: pytest.CaptureFixture[str], tmp_path: Path, data: str, *extra: str) -> tuple[int, str, Path]:
    out = tmp_path / "out.safetensors"
    code, _, err = run(capsys, "distill", "--dataset", data, "--method", "random", "--ipc", "1", "--quiet",
                       "--out", str(out), *extra)
    return code, err, out


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"x_train": np.full((12, 6, 6), 77, np.uint8)}, "channel 0 of the training images .* is constant"),
        ({"y_train": np.arange(11) % 3}, "'y_train' in .* has 11 labels, but x_train has 12 images"),
        ({"y_train": np.array([10**9] + [0] * 11)}, "holds label 1000000000"),
        ({"y_train": (np.arange(12) % 3).astype(float)}, "whole-number class labels"),
        ({"class_names": np.array(["a", "b"])}, "has 2 names, but the labels number 3 classes"),
        ({"x_train": np.full((12, 6, 6), np.nan, np.float32)}, "NaN"),
    ],
    ids=["constant-channel", "counts", "huge-label", "float-labels", "class-names", "nan-pixels"],
)
def test_a_bad_npz_is_exit_2_naming_the_problem_and_writes_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, changes: dict[str, object], words: str):
    path = _npz(tmp_path / "d.npz", **changes)
    code, err, out = _distill(capsys, tmp_path, f"npz:{path}")
    assert code == 2 and "Traceback" not in err and str(path) in err
    assert err.count("\n") == 1 and re.search(words, err), err
    assert not out.exists()  # never a NaN "verified" artifact


def test_an_npz_that_is_not_a_zip_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    path = tmp_path / "d.npz"
    path.write_text("x_train,y_train\n1,2\n")
    code, err, _ = _distill(capsys, tmp_path, f"npz:{path}")
    assert code == 2 and "is not an .npz file" in err and "Traceback" not in err


def test_a_corrupt_image_is_named_and_skip_bad_images_skips_it(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture):
    root = _folder(tmp_path / "imgs")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    code, err, out = _distill(capsys, tmp_path, f"imagefolder:{root}")
    assert code == 2 and f"'{root / 'b' / 'broken.png'}' cannot be read as an image" in err
    assert "--skip-bad-images" in err and not out.exists()
    with caplog.at_level(logging.WARNING):
        code, err, out = _distill(capsys, tmp_path, f"imagefolder:{root}", "--skip-bad-images")
    assert code == 0 and out.is_file()
    assert "skipped 1 bad image file(s)" in caplog.text + err
    assert load_artifact(out).metadata["config"]["data"]["skip_bad_images"] is True


def test_skip_bad_images_is_not_recorded_when_unset(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    code, _, out = _distill(capsys, tmp_path, f"imagefolder:{_folder(tmp_path / 'imgs')}")
    assert code == 0 and "skip_bad_images" not in load_artifact(out).metadata["config"]["data"]


def test_a_directory_named_like_an_image_and_a_symlink_loop_are_named(capsys: pytest.CaptureFixture[str],
                                                                      tmp_path: Path):
    root = _folder(tmp_path / "imgs")
    (root / "a" / "x.png").mkdir()
    os.symlink("loop.png", root / "b" / "loop.png")
    code, err, _ = _distill(capsys, tmp_path, f"imagefolder:{root}")
    assert code == 2 and "2 file(s)" in err and "x.png' is a directory" in err and "loop.png' cannot be opened" in err


def test_train_and_test_folders_with_different_classes_are_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    _folder(tmp_path / "imgs" / "train", ("cat", "dog", "emu"))
    _folder(tmp_path / "imgs" / "test", ("cat", "emu"))
    code, err, _ = _distill(capsys, tmp_path, f"imagefolder:{tmp_path / 'imgs'}")
    assert code == 2 and "only in train/: dog" in err


@pytest.mark.parametrize(
    "override, words",
    [("method.batch_real=0", "method.batch_real must be >= 1; got 0"),
     ("method.batch_real=-3", "method.batch_real must be >= 1; got -3"),
     ("method.checkpoint_every=-1", "method.checkpoint_every must be >= 0"),
     ("eval.runs=-1", "eval.runs must be >= 1"),
     ("method.lr_img=-0.5", "method.lr_img must be >= 0"),
     ('method.init=["real"]', "method.init must be text; got ['real']")],
)
def test_out_of_range_settings_are_exit_2_not_diverged(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       override: str, words: str):
    code, _, err = run(capsys, "distill", "--method", "dm", "--ipc", "1", "--quiet", "--out",
                       str(tmp_path / "x.safetensors"), override)
    assert code == 2 and words in err and "diverged" not in err and "Traceback" not in err


def test_a_deeply_nested_config_file_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    config = tmp_path / "deep.toml"
    config.write_text("x = " + "[" * 5000 + "]" * 5000)
    code, _, err = run(capsys, "distill", "--config", str(config), "--out", str(tmp_path / "x.safetensors"))
    assert code == 2 and "too deeply" in err and "Traceback" not in err
