"""Outputs are checked before any work, and file-system failures end in one line with exit 2."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from securedd import store
from securedd.cli import distill_cmd, evaluate_cmd
from securedd.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture
def no_work(monkeypatch):
    """Any distillation or artifact load fails the test: the checks must come first."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(distill_cmd, "distill", forbidden)
    monkeypatch.setattr(evaluate_cmd, "load_checked", forbidden)


@pytest.mark.parametrize("argv, words", [
    (["distill", "--method", "random", "--out", "{tmp}"], "--out {tmp} is a folder"),
    (["distill", "--method", "random", "--out", "{tmp}/file/x.safetensors"], "is a file, so no folder can be made"),
    (["distill", "--method", "random", "--out", "{tmp}/x.safetensors", "--grid"], "--grid {tmp}/x.png is a folder"),
    (["distill", "--method", "random", "--out", "{tmp}/c.safetensors"], "the checkpoint {tmp}/c.safetensors.ckpt is a"),
    (["evaluate", "{tmp}/missing.safetensors", "--json", "{tmp}"], "--json {tmp} is a folder"),
    (["show", "{tmp}/missing.safetensors", "--out", "{tmp}"], "the grid {tmp} is a folder"),
    (["keygen", "--out", "{tmp}/file/sender"], "is a file, so no folder can be made"),
    (["experts", "--dataset", "digits", "--out", "{tmp}/file"], "--out {tmp}/file is a file, not a folder"),
    (["pool", "--dataset", "digits", "--model", "mlp", "--out", "{tmp}/file"], "is a file, not a folder"),
    (["demo", "--out-dir", "{tmp}/file"], "--out-dir {tmp}/file is a file, not a folder"),
    (["audit", "{tmp}/missing.safetensors", "--out-dir", "{tmp}/file"], "is a file, not a folder"),
    (["attack", "key-search", "{tmp}/missing.safetensors", "--json", "{tmp}"], "--json {tmp} is a folder"),
    (["adapt", "--pool", "{tmp}/p", "--target", "digits", "--out", "{tmp}"], "--out {tmp} is a folder"),
    (["federate", "--dataset", "digits", "--out", "{tmp}/file/f.safetensors"], "is a file, so no folder"),
])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(argv, words, tmp_path: Path, capsys, no_work):
    (tmp_path / "file").write_text("in the way")
    (tmp_path / "x.png").mkdir()
    (tmp_path / "c.safetensors.ckpt").mkdir()
    code, err = run(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert code == 2 and words.replace("{tmp}", str(tmp_path)) in err and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"securedd {argv[0]}: error: ")


def test_distill_refuses_a_disk_without_space_before_distilling(tmp_path: Path, capsys, monkeypatch):
    import securedd.api as api

    def forbidden(*args, **kwargs):
        raise AssertionError("distilled although the disk is full")

    monkeypatch.setattr(api, "run_method", forbidden)
    monkeypatch.setattr(store.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    code, err = run(capsys, "distill", "--method", "random", "--ipc", "2", "--out", str(tmp_path / "x.safetensors"))
    assert code == 2 and "will be written and" in err and "1000 B free" in err and "free some space" in err


@pytest.mark.parametrize("exc, words", [
    (OSError(errno.ENOSPC, "No space left on device", "out.safetensors"), "the disk is full"),
    (PermissionError(errno.EACCES, "Permission denied", "out.safetensors"), "permission denied"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "out.safetensors"), "a folder stands where a file is expected"),
    (OSError(errno.EROFS, "Read-only file system", "out.safetensors"), "read-only"),
])
def test_os_errors_during_a_command_are_one_line_and_exit_2(exc, words, tmp_path: Path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(distill_cmd, "distill", fail)
    code, err = run(capsys, "distill", "--method", "random", "--out", str(tmp_path / "x.safetensors"), "-q")
    assert code == 2 and err.startswith("securedd distill: error: out.safetensors: ") and words in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_full_disk_while_writing_keys_is_one_line_and_leaves_no_temporary(tmp_path: Path, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    code, err = run(capsys, "keygen", "--out", str(tmp_path / "sender"))
    assert code == 2 and "No space left on device (the disk is full" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
