"""``securedd distill``: a --model that contradicts an existing SecDD key is an error, not ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from securedd.cli import distill_cmd
from securedd.cli.common import resolve_config
from securedd.cli.main import build_parser, main
from securedd.errors import MismatchError
from securedd.secure.keys import TargetKey, save_key


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return save_key(TargetKey("lenet", 12345), tmp_path / "target.key")


@pytest.mark.parametrize("model", [["--model", "mlp"], ["model=mlp"], ["--model=mlp"]])
def test_a_model_that_conflicts_with_the_key_is_refused(model, key: Path, tmp_path: Path, capsys, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("distilled for another architecture than the key's")

    monkeypatch.setattr(distill_cmd, "distill", forbidden)
    code = main(["distill", "--dataset", "digits", "--method", "secdd", "--ipc", "1", *model, f"method.key={key}",
                 "--out", str(tmp_path / "s.safetensors"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and f"--model mlp conflicts with the SecDD key {key}, which is for a lenet" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("extra", [[], ["--model", "lenet"], ["--method", "dc", "--model", "mlp"]])
def test_no_conflict_no_error(extra, key: Path):
    argv = ["distill", "--dataset", "digits", "--method", "secdd", "--ipc", "1", f"method.key={key}", *extra]
    args = build_parser().parse_args(argv)
    distill_cmd.check_key_model(args, resolve_config(args)[0])  # the key's model, or no --model: the key decides


def test_a_new_key_takes_the_model_given(tmp_path: Path):
    args = build_parser().parse_args(["distill", "--method", "secdd", "--model", "mlp",
                                      f"method.key={tmp_path / 'new.key'}"])
    distill_cmd.check_key_model(args, resolve_config(args)[0])
    with pytest.raises(MismatchError):
        save_key(TargetKey("lenet", 1), tmp_path / "new.key")
        distill_cmd.check_key_model(args, resolve_config(args)[0])


def _checkpoint(out: Path, digits_train, *extra: str) -> None:
    """A DM run on digits that stopped after its first iteration, its checkpoint beside ``out``."""
    from securedd.config import RunConfig, apply_overrides
    from securedd.distill import run_method

    cfg = apply_overrides(RunConfig(), ["method.name=dm", "model=convnet_tiny", "method.ipc=1", "method.iterations=2",
                                        "method.checkpoint_every=1", "method.batch_real=32", *extra])
    run_method(cfg, digits_train, progress=False, checkpoint=Path(str(out) + ".ckpt"))


ARGS = ["distill", "--dataset", "digits", "--method", "dm", "--model", "convnet_tiny", "--ipc", "1", "--no-preset",
        "method.iterations=2", "method.batch_real=32", "-q", "--resume"]


def test_resume_with_another_seed_is_one_line_naming_the_field(tmp_path: Path, digits_train, capsys):
    out = tmp_path / "dm.safetensors"
    _checkpoint(out, digits_train)
    code = main([*ARGS, "--seed", "7", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "belongs to another run: seed was 0, now 7" in err and err.count("\n") == 1
    assert Path(str(out) + ".ckpt").is_file() and not out.exists()  # nothing lost, nothing written
    assert main([*ARGS, "--out", str(out)]) == 0 and out.is_file()


def test_a_truncated_checkpoint_is_one_line_saying_how_to_recover(tmp_path: Path, digits_train, capsys):
    out = tmp_path / "dm.safetensors"
    _checkpoint(out, digits_train)
    ckpt = Path(str(out) + ".ckpt")
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    code = main([*ARGS, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"{ckpt}: the checkpoint is truncated or corrupt" in err
    assert "delete it, or run without --resume, to start afresh" in err and "Traceback" not in err
    assert main([*ARGS[:-1], "--out", str(out)]) == 0 and out.is_file() and not ckpt.exists()  # without --resume
