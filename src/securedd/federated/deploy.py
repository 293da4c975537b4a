"""SFDD on Flower's deployment engine: module-level apps and the app folder ``flwr run`` takes.

A SuperLink and one SuperNode per data owner run as separate processes (or machines); each
SuperNode gets its shard through its node config (``partition-id``). ``flwr run`` submits
the app folder written by :func:`write_app` (a ``pyproject.toml`` naming the apps below and
the run's settings); the apps' code is securedd itself, installed beside Flower on every
machine, so nothing is downloaded at run time.

Example (loopback, no TLS)::

    securedd federate --deploy-app app --dataset digits --clients 2 --rounds 3 model=convnet_tiny
    flower-superlink --insecure                         # HTTP on 127.0.0.1:8000
    flower-supernode --insecure --superlink 127.0.0.1:8000 --port 9094 --node-config "partition-id=0"
    flower-supernode --insecure --superlink 127.0.0.1:8000 --port 9095 --node-config "partition-id=1"
    flwr run app local --stream     # [superlink.local] address = "127.0.0.1:8000" in $FLWR_HOME/config.toml
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from securedd.config import config_from_dict, config_to_dict
from securedd.defences import defence_from_dict
from securedd.federated.apps import make_client_app, serve
from securedd.federated.settings import FederationSettings

__all__ = ["client_app", "server_app", "settings_from_run_config", "write_app"]


def settings_from_run_config(run_config: dict[str, Any]) -> FederationSettings:
    """The federation's settings from the app's run config (written by :func:`write_app`)."""
    cfg = config_from_dict(json.loads(str(run_config["run-config"])))
    return FederationSettings(cfg, clients=int(run_config["clients"]), rounds=int(run_config["rounds"]),
                              split=str(run_config["split"]), aggregator=str(run_config["aggregator"]),
                              trim=float(run_config["trim"]),
                              server_momentum=float(run_config.get("server-momentum", 0.0)),
                              min_clients=int(run_config["min-clients"]),
                              quorum=int(run_config["quorum"]) if int(run_config.get("quorum", 0)) else None,
                              patience=int(run_config.get("patience", 3)),
                              trust_root=int(run_config.get("trust-root", 10)),
                              timeout=float(run_config["timeout"]),
                              defence=defence_from_dict(json.loads(str(run_config["defence"]))),
                              accountant=str(run_config["accountant"]), delta=float(run_config["delta"]),
                              out=str(run_config["out"]), progress=False)


def write_app(folder: str | Path, settings: FederationSettings) -> Path:
    """Write the app folder ``flwr run`` submits: its ``pyproject.toml`` with ``settings``."""
    import tomli_w

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"run-config": json.dumps(config_to_dict(settings.config)), "clients": settings.clients,
              "rounds": settings.rounds, "split": settings.split, "aggregator": settings.aggregator,
              "trim": settings.trim, "server-momentum": settings.server_momentum,
              "min-clients": settings.min_clients, "quorum": settings.quorum or 0, "patience": settings.patience,
              "trust-root": settings.trust_root,
              "timeout": settings.timeout,
              "defence": json.dumps(settings.defence.to_dict() if settings.defence is not None else None),
              "accountant": settings.accountant,
              "delta": settings.delta, "out": str(Path(settings.out).resolve())}
    project = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {"name": "securedd-sfdd", "version": "1.0.0", "description": "SFDD with securedd",
                    "license": "MIT", "dependencies": []},
        "tool": {"hatch": {"build": {"targets": {"wheel": {"packages": ["."]}}}},
                 "flwr": {"app": {"publisher": "securedd",
                                  "components": {"serverapp": "securedd.federated.deploy:server_app",
                                                 "clientapp": "securedd.federated.deploy:client_app"},
                                  "config": config}}},
    }
    (folder / "pyproject.toml").write_text(tomli_w.dumps(project))
    return folder


def _server() -> Any:
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def _main(grid: Any, context: Any) -> None:
        serve(grid, settings_from_run_config(dict(context.run_config)))

    return app


server_app = _server()
client_app = make_client_app()
