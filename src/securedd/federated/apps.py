"""SFDD on Flower: a ServerApp that owns the global set ``S^g`` and a ClientApp per data owner.

Every round the ServerApp sends ``S^g`` (an ``ArrayRecord``) and the run's settings (a
``ConfigRecord``) to the connected clients; each ClientApp runs :func:`client_train` (one
iteration of the configured matching method -- DC, DSA, DM -- from ``S^g``, with its
client-stage defence as hooks) on its shard and replies with its updated set, its shard
size and its echo of the round. The server's side -- screening, aggregation, checkpoints,
the artifact -- is :func:`~securedd.federated.server.run_server`, whatever carries the
messages: Flower here (:func:`serve`), or this process (:func:`run_in_process`). Every
client computes with a fixed number of threads, so the same seed gives the same artifact
however the machine is loaded.

The same apps run on Flower's simulation engine (:func:`run_federation`) and on its
deployment engine (SuperLink + SuperNodes, ``flwr run``), where the settings come from the
app's run config and a client's shard from its node config (``partition-id``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch

from securedd.artifacts import Artifact
from securedd.config import RunConfig, config_from_dict, config_to_dict
from securedd.data import load_dataset
from securedd.data.spec import RealData
from securedd.defences import defence_from_dict
from securedd.distill.hooks import Hooks
from securedd.distill.synthetic import class_labels
from securedd.errors import ConfigError
from securedd.federated.client import local_update
from securedd.federated.doorping import Doorping, arm
from securedd.federated.hostile import Hostile
from securedd.federated.server import Reply, reply_echo, run_server
from securedd.federated.settings import FederationSettings
from securedd.federated.shards import make_shards
from securedd.rng import make_generator, torch_threads

__all__ = ["answer", "client_shard", "client_train", "make_client_app", "make_server_app", "run_federation",
           "run_in_process", "serve"]

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _shard(run_config: str, clients: int, split: str, partition: int) -> RealData:
    """This client's shard, the same on every round (loaded once per process)."""
    cfg = config_from_dict(json.loads(run_config))
    train = load_dataset(cfg.data.name, "train", root=cfg.data.root, download=cfg.data.download,
                         skip_bad_images=cfg.data.skip_bad_images)
    shards = make_shards(train.labels, clients, split, make_generator(cfg.seed, "federated", "shards"),
                         train.spec.num_classes)
    if not 0 <= partition < clients:
        raise ConfigError(f"partition-id {partition} is outside 0..{clients - 1}")
    return train.subset(shards[partition])


def client_shard(config: RunConfig, clients: int, split: str, partition: int) -> RealData:
    """Client ``partition``'s shard of ``config``'s training data, as the ClientApp loads it."""
    return _shard(json.dumps(config_to_dict(config)), clients, split, partition)


def client_train(content: dict[str, Any], partition: int,
                 state: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The ClientApp's work, Flower-free: ``(updated images, metrics)`` for one message's content.

    ``state`` is what this client keeps from round to round (a Doorping attacker's trigger).
    """
    settings = content["config"]
    doorping = json.loads(settings.get("doorping") or "null")
    attack = Doorping(**doorping) if doorping else None
    if attack is not None and partition >= attack.count(int(settings["clients"])):
        attack = None  # an honest worker
    cfg = config_from_dict(json.loads(settings["run-config"]))
    shard = _shard(settings["run-config"], int(settings["clients"]), str(settings["split"]), partition)
    size = len(shard)
    hooks: list[Hooks] = []
    if attack is not None:
        shard, trigger = arm(shard, attack, state if state is not None else {}, cfg.seed, partition)
        hooks.append(trigger)
    images = content["images"]
    labels = class_labels(shard.spec.num_classes, cfg.method.ipc, images.device)
    hostile = json.loads(settings.get("hostile") or "null")
    sent = images.clone() if hostile else images
    start = time.perf_counter()
    with torch_threads(int(settings.get("threads", 1))):
        updated, loss = local_update(cfg, shard, images, labels, client=partition, round_=int(settings["round"]),
                                     defence=defence_from_dict(json.loads(settings["defence"])), hooks=hooks)
    weight = float(size)
    if hostile:
        updated, weight = Hostile(**hostile).tamper(sent, updated, weight, seed=cfg.seed, worker=partition)
    return updated, {"num-examples": weight, "loss": loss, "seconds": time.perf_counter() - start}


def answer(node: int, images: torch.Tensor, record: dict[str, Any],
           state: dict[str, torch.Tensor] | None = None) -> Reply:
    """Client ``node``'s reply to a round, computed in this process (:func:`client_train` and its echo).

    A client that fails answers with an error reply, as Flower turns a failing ClientApp
    into an error message; the server drops it and the round goes on.
    """
    try:
        updated, metrics = client_train({"images": images.clone(), "config": record}, node, state)
    except Exception as exc:
        return Reply(node, error=f"error: {type(exc).__name__}: {exc}")
    return Reply(node, updated, metrics["num-examples"], metrics["loss"], **reply_echo(images, record))


def run_in_process(settings: FederationSettings,
                   states: dict[int, dict[str, torch.Tensor]] | None = None) -> Artifact:
    """Run every client in this process, one after another, over the same server loop.

    No messages travel: the clients' work (:func:`client_train`) and the server's
    (:func:`~securedd.federated.server.run_server`) are exactly those of the Flower apps, so a seed gives the same
    set as :func:`run_federation`. Meant for tests and for benchmarks on one machine,
    where Flower's per-client processes only add start-up time. ``states`` receives what
    each client keeps between rounds (a Doorping attacker's trigger, for scoring).
    """
    states = {} if states is None else states

    def exchange(images: torch.Tensor, record: dict[str, Any]) -> tuple[Sequence[int], list[Reply]]:
        nodes = range(settings.clients)
        return nodes, [answer(node, images, record, states.setdefault(node, {})) for node in nodes]

    return run_server(settings, exchange)


def serve(grid: Any, settings: FederationSettings) -> Artifact:
    """The ServerApp's main loop on a Flower ``Grid`` (simulation or deployment engine)."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

    def exchange(images: torch.Tensor, record: dict[str, Any]) -> tuple[Sequence[int], list[Reply]]:
        nodes = _wait_for_nodes(grid, settings)
        messages = [Message(content=RecordDict({"arrays": ArrayRecord({"images": images}),
                                                "config": ConfigRecord(record)}),
                            message_type=MessageType.TRAIN, dst_node_id=node) for node in nodes]
        return nodes, [_reply(m) for m in grid.send_and_receive(messages, timeout=settings.timeout)]

    return run_server(settings, exchange)


def _reply(message: Any) -> Reply:
    node = message.metadata.src_node_id
    if message.has_error():
        return Reply(node, error=f"error: {message.error.reason}")
    try:
        metrics, echo = message.content["metrics"], message.content["echo"]
        return Reply(node, message.content["arrays"].to_torch_state_dict()["images"], float(metrics["num-examples"]),
                     float(metrics.get("loss", float("nan"))), round=int(echo["round"]), basis=str(echo["basis"]))
    except (KeyError, TypeError, ValueError) as exc:
        return Reply(node, error=f"malformed reply ({type(exc).__name__}: {exc})")


def _wait_for_nodes(grid: Any, settings: FederationSettings, poll: float = 1.0) -> list[int]:
    deadline = time.monotonic() + settings.timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= settings.min_clients:
            return nodes
        if time.monotonic() > deadline:
            raise ConfigError(f"only {len(nodes)} clients connected within {settings.timeout:.0f} s; "
                              f"min_clients={settings.min_clients}")
        time.sleep(poll)


def make_server_app(settings: FederationSettings) -> Any:
    """A Flower ``ServerApp`` running :func:`serve` with ``settings``."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def _main(grid: Any, context: Any) -> None:
        serve(grid, settings)

    return app


def make_client_app() -> Any:
    """A Flower ``ClientApp`` whose train handler runs :func:`client_train` on its partition."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def _train(msg: Any, context: Any) -> Any:
        content = {"images": msg.content["arrays"].to_torch_state_dict()["images"], "config": msg.content["config"]}
        echo = reply_echo(content["images"], content["config"])
        kept = context.state["kept"].to_torch_state_dict() if "kept" in context.state else {}
        images, metrics = client_train(content, int(context.node_config["partition-id"]), kept)
        if kept:
            context.state["kept"] = ArrayRecord({k: v.contiguous() for k, v in kept.items()})
        return Message(content=RecordDict({"arrays": ArrayRecord({"images": images.contiguous()}),
                                           "metrics": MetricRecord(dict(metrics)), "echo": ConfigRecord(echo)}),
                       reply_to=msg)

    return app


def run_federation(settings: FederationSettings, *, verbose: bool = False) -> Artifact:
    """Run the federation on Flower's simulation engine (one process per concurrent client).

    Without ``verbose``, Flower and Ray log errors only (Flower's own console handler and
    the clients' forwarded output included); with it, as much as Flower's verbose mode.
    """
    from flwr.simulation import run_simulation

    backend: dict[str, Any] = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}}
    if not verbose:
        backend["init_args"] = {"logging_level": logging.ERROR, "log_to_driver": False}
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.ERROR)
    try:
        run_simulation(server_app=make_server_app(settings), client_app=make_client_app(),
                       num_supernodes=settings.clients, backend_config=backend, verbose_logging=verbose)
    finally:
        flwr_logger.setLevel(level)
    from securedd.artifacts import load_artifact

    return load_artifact(settings.out)
