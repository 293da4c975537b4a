"""Flower's deployment engine on loopback: a SuperLink and SuperNodes as separate processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from securedd.artifacts import load_artifact  # noqa: E402
from securedd.config import RunConfig, apply_overrides  # noqa: E402
from securedd.federated.apps import FederationSettings  # noqa: E402
from securedd.federated.deploy import write_app  # noqa: E402

pytestmark = pytest.mark.fl
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port}")


class Loopback:
    """A SuperLink and ``n`` SuperNodes on 127.0.0.1, stopped on exit."""

    def __init__(self, folder: Path, nodes: int) -> None:
        self.folder, self.procs, self.nodes = folder, [], []
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
                    "FLWR_HOME": str(folder / "flwr-home")}
        self.port = _free_port()
        self._start("superlink", [BIN / "flower-superlink", "--insecure", "--host", "127.0.0.1", "--port",
                                  str(self.port)])
        _wait_port(self.port)
        for i in range(nodes):
            self.nodes.append(self._start(f"node{i}", [BIN / "flower-supernode", "--insecure", "--superlink",
                                                       f"127.0.0.1:{self.port}", "--port", str(_free_port()),
                                                       "--node-config", f"partition-id={i}"]))
        home = folder / "flwr-home"
        home.mkdir(exist_ok=True)
        (home / "config.toml").write_text(f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
                                          f'address = "127.0.0.1:{self.port}"\ninsecure = true\n')

    def _start(self, name: str, argv: list) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([str(a) for a in argv], cwd=self.folder, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, app: Path, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "flwr"), "run", str(app), "loopback", "--stream"], cwd=self.folder,
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _settings(tmp_path: Path, **kw) -> FederationSettings:
    cfg = apply_overrides(RunConfig(), ["data.name=digits", "method.name=dc", "method.ipc=1", "model=convnet_tiny",
                                        "seed=0", "method.outer_loop=2", "method.inner_loop=1",
                                        "method.compile=false"])
    return FederationSettings(cfg, **{"clients": 3, "rounds": 2, "out": str(tmp_path / "fed.safetensors"),
                                      "timeout": 120.0, **kw})


def test_deployment_engine_with_three_supernodes(tmp_path):
    net = Loopback(tmp_path, 3)
    try:
        done = net.run(write_app(tmp_path / "app", _settings(tmp_path)), timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        art = load_artifact(tmp_path / "fed.safetensors")
        history = art.metadata["info"]["federated"]["history"]
        assert [(h["clients"], h["accepted"]) for h in history] == [(3, 3), (3, 3)]
    finally:
        net.stop()


def test_killing_a_supernode_mid_run_does_not_stop_the_federation(tmp_path):
    net = Loopback(tmp_path, 3)
    try:
        settings = _settings(tmp_path, rounds=3, min_clients=2, timeout=45.0)
        app = write_app(tmp_path / "app", settings)
        run = subprocess.Popen([str(BIN / "flwr"), "run", str(app), "loopback", "--stream"], cwd=tmp_path,
                               env=net.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 400
        while not settings.checkpoint.is_file():  # the first round is through
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(1)
        os.killpg(net.nodes[2].pid, signal.SIGKILL)
        run.communicate(timeout=600)
        art = load_artifact(settings.out)
        history = art.metadata["info"]["federated"]["history"]
        assert len(history) == 3 and history[0]["accepted"] == 3 and history[-1]["accepted"] == 2
    finally:
        net.stop()
