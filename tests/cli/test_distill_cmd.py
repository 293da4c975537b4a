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
