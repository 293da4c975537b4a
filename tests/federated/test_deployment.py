"""Flower's deployment engine on loopback: a SuperLink and SuperNodes as separate processes."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from securedd.artifacts import load_artifact  # noqa: E402
from securedd.config import RunConfig, apply_overrides  # noqa: E402
from securedd.federated.deploy import write_app  # noqa: E402
from securedd.federated.settings import FederationSettings  # noqa: E402

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


def _tls_and_node_keys(folder: Path, nodes: int) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and one P-384 key pair per SuperNode."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())

    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca = (x509.CertificateBuilder().subject_name(name("securedd test CA")).issuer_name(name("securedd test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                          x509.DNSName("localhost")]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    files = {"ca": folder / "ca.crt", "cert": folder / "server.pem", "key": folder / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(pem(server_key))
    for i in range(nodes):
        key = ec.generate_private_key(ec.SECP384R1())
        files[f"node{i}"] = folder / f"node{i}.key"
        files[f"node{i}"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                        serialization.NoEncryption()))
        files[f"node{i}.pub"] = folder / f"node{i}.pub"
        files[f"node{i}.pub"].write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                         serialization.PublicFormat.OpenSSH))
    return files


class Loopback:
    """A SuperLink and ``n`` SuperNodes on 127.0.0.1, stopped on exit.

    ``secure``: TLS on every connection (a CA made here) and SuperNode authentication (each
    node's public key registered with ``flwr supernode register`` before it starts);
    ``intruders`` more SuperNodes then try to join with keys nobody registered.
    """

    def __init__(self, folder: Path, nodes: int, secure: bool = False, intruders: int = 0) -> None:
        self.folder, self.procs, self.nodes = folder, [], []
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
                    "FLWR_HOME": str(folder / "flwr-home")}
        self.port = _free_port()
        files = _tls_and_node_keys(folder, nodes + intruders) if secure else {}
        link = (["--ssl-ca-certfile", files["ca"], "--ssl-certfile", files["cert"], "--ssl-keyfile", files["key"],
                 "--enable-supernode-auth"] if secure else ["--insecure"])
        self._start("superlink", [BIN / "flower-superlink", *link, "--host", "127.0.0.1", "--port", str(self.port)])
        _wait_port(self.port)
        home = folder / "flwr-home"
        home.mkdir(exist_ok=True)
        trust = f'root-certificates = "{files["ca"]}"' if secure else "insecure = true"
        (home / "config.toml").write_text(f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
                                          f'address = "127.0.0.1:{self.port}"\n{trust}\n')
        for i in range(nodes + intruders):
            node = ["--insecure"]
            if secure and i >= nodes:
                node = ["--root-certificates", files["ca"], "--auth-supernode-private-key", files[f"node{i}"]]
            elif secure:
                done = subprocess.run([str(BIN / "flwr"), "supernode", "register", str(files[f"node{i}.pub"]),
                                       "loopback"], cwd=folder, env=self.env, capture_output=True, text=True,
                                      timeout=120)
                assert done.returncode == 0, done.stdout + done.stderr
                node = ["--root-certificates", files["ca"], "--auth-supernode-private-key", files[f"node{i}"]]
            self.nodes.append(self._start(f"node{i}", [BIN / "flower-supernode", *node, "--superlink",
                                                       f"127.0.0.1:{self.port}", "--port", str(_free_port()),
                                                       "--node-config", f"partition-id={i % nodes}"]))

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


def test_deployment_engine_with_tls_node_authentication_and_an_intruder(tmp_path):
    net = Loopback(tmp_path, 3, secure=True, intruders=1)
    try:
        done = net.run(write_app(tmp_path / "app", _settings(tmp_path)), timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        art = load_artifact(tmp_path / "fed.safetensors")
        history = art.metadata["info"]["federated"]["history"]
        assert [(h["clients"], h["accepted"]) for h in history] == [(3, 3), (3, 3)]  # the intruder never joined
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))  # TLS with the certificate our CA signed
        with socket.create_connection(("127.0.0.1", net.port)) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert "Connection attempt failed" in (tmp_path / "node3.log").read_text()
    finally:
        net.stop()


def test_killing_a_supernode_mid_run_does_not_stop_the_federation(tmp_path):
    """Also the plain (insecure) deployment, started as a user would: ``flwr run .`` in the exported app
    folder, on the default federation. Its first round is every node's, as with TLS."""
    net = Loopback(tmp_path, 3)
    try:
        settings = _settings(tmp_path, rounds=2, min_clients=2, timeout=25.0)  # round 1 waits this long for the dead
        app = write_app(tmp_path / "app", settings)
        run = subprocess.Popen([str(BIN / "flwr"), "run", ".", "--stream"], cwd=app,
                               env=net.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 400
        while not settings.checkpoint.is_file():  # the first round is through
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(1)
        os.killpg(net.nodes[2].pid, signal.SIGKILL)
        run.communicate(timeout=600)
        art = load_artifact(settings.out)
        history = art.metadata["info"]["federated"]["history"]
        assert len(history) == 2 and history[0]["accepted"] == 3 and history[-1]["accepted"] == 2
        if history[-1]["clients"] == 3:  # the link still listed the dead node: it is recorded as dropped
            assert [d["reason"] for d in history[-1]["dropped"]] == ["no reply (a timeout or a lost connection)"]
    finally:
        net.stop()
