"""Stopping ``securedd distill`` in a real process, then ``--resume``: the artifact is the uninterrupted one.

Ctrl-C (SIGINT) must save a checkpoint, print how to resume and exit with 130; SIGKILL at
a random moment after the first checkpoint must leave a checkpoint (or a finished artifact)
that ``--resume`` completes. Each process runs a tiny DM configuration for a few seconds.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import securedd

ARGS = ["distill", "--dataset", "digits", "--method", "dm", "--model", "convnet_tiny", "--ipc", "1", "--seed", "3",
        "method.iterations=150", "method.checkpoint_every=1", "method.batch_real=16", "--quiet"]


def _env() -> dict[str, str]:
    src = str(Path(securedd.__file__).parents[1])  # the securedd under test, in the child too
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _securedd(*args: str) -> list[str]:
    return [sys.executable, "-m", "securedd", *args]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _start(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(_securedd(*ARGS, "--out", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())


def _wait_for_checkpoint(proc: subprocess.Popen[str], ckpt: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not ckpt.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"no checkpoint appeared (exit {proc.returncode}):\n{out}\n{err}")
        time.sleep(0.01)


def _resume(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("full") / "set.safetensors"
    _resume(_securedd(*ARGS, "--out", str(out)))
    return _sha256(out)


def test_ctrl_c_saves_a_checkpoint_prints_the_resume_command_and_exits_130(uninterrupted: str, tmp_path: Path):
    out = tmp_path / "set.safetensors"
    ckpt = Path(f"{out}.ckpt")
    proc = _start(out)
    _wait_for_checkpoint(proc, ckpt)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    found = re.search(r"interrupted at iteration (\d+)/150; checkpoint saved to (.+?); resume with: (.+)$", err, re.M)
    assert found, err
    assert 1 <= int(found[1]) < 150 and Path(found[2]) == ckpt and ckpt.is_file() and not out.exists()
    command = shlex.split(found[3])
    assert command == ["securedd", *ARGS, "--out", str(out), "--resume"]
    _resume(_securedd(*command[1:]))
    assert _sha256(out) == uninterrupted and not ckpt.exists()


def test_sigkill_at_a_random_moment_then_resume_gives_the_same_artifact(uninterrupted: str, tmp_path: Path):
    out = tmp_path / "set.safetensors"
    ckpt = Path(f"{out}.ckpt")
    delay = random.uniform(0.0, 1.5)
    proc = _start(out)
    _wait_for_checkpoint(proc, ckpt)
    time.sleep(delay)
    proc.kill()
    proc.communicate(timeout=60)
    assert ckpt.is_file() or out.is_file(), f"killed {delay:.3f} s after the first checkpoint: nothing left"
    _resume(_securedd(*ARGS, "--out", str(out), "--resume"))
    assert _sha256(out) == uninterrupted, f"killed {delay:.3f} s after the first checkpoint"
