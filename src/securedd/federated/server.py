"""The SFDD server's rounds over any transport: screening, aggregation, checkpoints, the artifact.

Every round the server sends ``S^g`` and the run's settings to the clients it asks, and
gets back replies (:class:`Reply`): a client's updated set, its shard size and its echo of
the round (:func:`reply_echo`: the round number and the SHA-256 of the set it was sent).
It refuses replies that are errors, come from a node it did not ask or twice from one
node, answer another round or another set (a stale or replayed reply), or cannot be right
(:func:`~securedd.federated.screening.screen`); nodes asked that never answer are recorded
too. Every dropped client and its reason goes into the round's history and the log. It
aggregates the rest class by class when a quorum remains (or with FLTrust against its own
update on a clean root set, :mod:`securedd.federated.trust`), checkpoints ``S^g``
atomically, and resumes from the checkpoint after a restart. At the end it writes a
verified artifact whose metadata holds the federation's settings, the round history and
the privacy ledger. Replies are aggregated in a canonical order (by shard size, then
content), so the same seed gives the same artifact in whatever order the replies arrive.

The transport is an :data:`Exchange`; :mod:`securedd.federated.apps` gives the Flower one
and the in-process one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from tqdm.auto import tqdm

from securedd.artifacts import Artifact, save_artifact
from securedd.config import config_from_dict, config_to_dict
from securedd.data import dataset_spec, load_dataset
from securedd.data.sampler import ClassBalancedSampler
from securedd.data.spec import RealData
from securedd.defences import PrivacyLedger
from securedd.distill.synthetic import class_labels
from securedd.errors import ConfigError
from securedd.federated.aggregate import aggregate
from securedd.federated.client import local_update
from securedd.federated.screening import cap_weights, screen
from securedd.federated.settings import FederationSettings
from securedd.federated.trust import fltrust
from securedd.rng import make_generator, torch_threads
from securedd.store import atomic_write_bytes

__all__ = ["Exchange", "Reply", "initial_images", "reply_echo", "run_server", "server_reference"]

log = logging.getLogger(__name__)


def initial_images(settings: FederationSettings) -> torch.Tensor:
    """The server's first ``S^g``: seeded Gaussian noise, ``ipc`` images per class."""
    cfg = settings.config
    spec = dataset_spec(cfg.data.name, root=cfg.data.root, skip_bad_images=cfg.data.skip_bad_images)
    gen = make_generator(cfg.seed, "federated", "init")
    return torch.randn((spec.num_classes * cfg.method.ipc, *spec.shape), generator=gen)


@lru_cache(maxsize=2)
def _root(run_config: str, per_class: int) -> RealData:
    cfg = config_from_dict(json.loads(run_config))
    train = load_dataset(cfg.data.name, "train", root=cfg.data.root, download=cfg.data.download,
                         skip_bad_images=cfg.data.skip_bad_images)
    sampler = ClassBalancedSampler(train, make_generator(cfg.seed, "federated", "root"))
    index = torch.cat([sampler.indices(c, per_class) for c in range(train.spec.num_classes)])
    return train.subset(index.sort().values)


def server_reference(settings: FederationSettings, images: torch.Tensor, round_: int) -> torch.Tensor:
    """FLTrust's reference: the set after the server's own round on its root set (``trust_root`` per class).

    The same update a client computes (:func:`local_update`, seeded for "client" -1 and the
    round), without a client defence, on clean images the server holds.
    """
    cfg = settings.config
    root = _root(json.dumps(config_to_dict(cfg)), settings.trust_root)
    with torch_threads(settings.threads):
        reference, _ = local_update(cfg, root, images, class_labels(root.spec.num_classes, cfg.method.ipc,
                                                                    images.device), client=-1, round_=round_)
    return reference


def _ledger(settings: FederationSettings, rounds: int) -> PrivacyLedger:
    if settings.defence is None:
        return PrivacyLedger("none", rounds=rounds)
    return settings.defence.ledger(rounds, delta=settings.delta, accountant=settings.accountant)


@dataclass
class Reply:
    """One client's answer to a round: its set and shard size, or why there is none.

    ``round`` and ``basis`` are the client's echo (:func:`reply_echo`) of the round it
    answers and of the set it started from; a reply without them is refused.
    """

    node: int
    images: Any = None
    weight: float = 0.0
    loss: float = float("nan")
    error: str | None = None
    round: int | None = None
    basis: str | None = None


def reply_echo(images: torch.Tensor, record: dict[str, Any]) -> dict[str, Any]:
    """What a client echoes back with its reply: the round it was sent and the SHA-256 of the set it was sent.

    The server refuses a reply whose echo is not this round's: a reply delayed from an
    earlier round, replayed, or computed from a set the server did not send.
    """
    return {"round": int(record["round"]), "basis": _digest(images)}


Exchange = Callable[[torch.Tensor, dict[str, Any]], tuple[Sequence[int], list[Reply]]]
"""``(S^g, settings record) -> (nodes asked, replies)``: one round's messages out and back.

A node asked that does not reply (a timeout, a lost connection) is recorded as dropped."""


def run_server(settings: FederationSettings, exchange: Exchange) -> Artifact:
    """The server's rounds over any transport (:func:`~securedd.federated.apps.serve` is the Flower one).

    Screens every reply (:func:`~securedd.federated.screening.screen`) and logs each
    refusal with its reason; aggregates the rest when at least the quorum remain, and
    otherwise keeps ``S^g`` for the round (``patience`` such rounds in a row stop the run).
    A non-finite aggregate is never taken or checkpointed. Checkpoints after every round
    and resumes from the checkpoint when it exists and belongs to this run.
    """
    images, first, history, velocity = _resume(settings)
    bar = tqdm(range(first, settings.rounds), desc="federate", initial=first, total=settings.rounds,
               disable=not settings.progress)
    for round_ in bar:
        started = time.perf_counter()
        asked, replies = exchange(images, {**settings.to_record(), "round": round_})
        usable, dropped = _usable(round_, asked, replies, images, settings)
        # a canonical order, whatever order the replies arrived in: float sums then repeat bit for bit
        usable.sort(key=lambda r: (r.weight, _digest(r.images)))
        losses = [r.loss for r in usable if math.isfinite(r.loss)]
        entry: dict[str, Any] = {"round": round_, "clients": len(asked), "accepted": len(usable),
                                 "loss": sum(losses) / len(losses) if losses else None}
        if dropped:
            entry["dropped"] = dropped
        step = _step(round_, usable, images, velocity, settings)
        if step is None:
            entry["skipped"] = True
            history.append(entry)
            streak = _skipped_streak(history)
            if streak >= settings.patience:  # stop; a restart retries this round
                _checkpoint(settings, images, round_, history[:-1], velocity)
                raise ConfigError(f"round {round_}: {streak} rounds in a row without a quorum of "
                                  f"{settings.needed_replies} usable replies of {len(asked)} clients (patience "
                                  f"{settings.patience}); the set so far is in {settings.checkpoint}, and a "
                                  f"restart with the same settings retries round {round_}")
        else:
            images, velocity = step
            history.append(entry)
            log.info("round %d: %d/%d replies aggregated, mean matching loss %s", round_, len(usable), len(asked),
                     entry["loss"])
        _checkpoint(settings, images, round_ + 1, history, velocity)
        if settings.progress:
            bar.set_postfix_str(_round_summary(entry, time.perf_counter() - started,
                                               _ledger(settings, round_ + 1).epsilon()))
    cfg = settings.config
    spec = dataset_spec(cfg.data.name, root=cfg.data.root, skip_bad_images=cfg.data.skip_bad_images)
    info = {"federated": {"clients": settings.clients, "rounds": settings.rounds, "split": settings.split,
                          "aggregator": settings.aggregator, "server_momentum": settings.server_momentum,
                          "quorum": settings.needed_replies, "policy": dataclasses.asdict(settings.policy),
                          "defence": settings.defence.to_dict() if settings.defence is not None else None,
                          "history": history}}
    if settings.doorping is not None:  # an experiment's record; a real server would not know
        info["federated"]["doorping"] = {**settings.doorping.to_dict(),
                                         "workers": settings.doorping.count(settings.clients)}
    if settings.hostile is not None:
        info["federated"]["hostile"] = settings.hostile.to_dict()
    if settings.aggregator == "fltrust":
        info["federated"]["trust_root"] = settings.trust_root
    art = save_artifact(settings.out, images, class_labels(spec.num_classes, cfg.method.ipc, images.device),
                        spec=spec, method=f"sfdd-{cfg.method.name}", ipc=cfg.method.ipc, seed=cfg.seed,
                        config=config_to_dict(cfg), privacy=_ledger(settings, settings.rounds).to_dict(), info=info)
    settings.checkpoint.unlink(missing_ok=True)  # the artifact holds the finished set
    return art


def _round_summary(entry: dict[str, Any], seconds: float, epsilon: float | None) -> str:
    """The progress bar's line for a finished round: replies used and dropped, its time, epsilon so far."""
    text = f"used {entry['accepted']}/{entry['clients']}, dropped {len(entry.get('dropped', ()))}, {seconds:.1f} s"
    if entry.get("skipped"):
        text += ", set kept (no quorum)"
    return text + (f", epsilon {epsilon:.3g}" if epsilon is not None else "")


def _usable(round_: int, asked: Sequence[int], replies: list[Reply], images: torch.Tensor,
            settings: FederationSettings) -> tuple[list[Reply], list[dict[str, Any]]]:
    """``(usable replies, dropped)``: the replies that pass the server's checks, and a record
    ``{"node", "reason"}`` of every node asked or answering that did not get in (each logged)."""
    dropped: list[dict[str, Any]] = []

    def drop(node: int, reason: str) -> None:
        log.warning("round %d: refused the reply of node %s: %s", round_, node, reason)
        dropped.append({"node": node, "reason": reason})

    counts: dict[int, int] = {}
    for reply in replies:
        counts[reply.node] = counts.get(reply.node, 0) + 1
    basis, expected, answered = _digest(images), set(asked), []
    for reply in replies:
        if reply.node not in expected:
            drop(reply.node, "that node was not asked this round")
        elif counts[reply.node] > 1:
            drop(reply.node, f"{counts[reply.node]} replies from one node this round")
        elif reply.error is not None:
            drop(reply.node, reply.error)
        elif reply.round != round_:
            drop(reply.node, f"it answers round {reply.round}, not round {round_} (a stale or replayed reply)")
        elif reply.basis != basis:
            drop(reply.node, "it was computed from another set than the one sent this round")
        else:
            answered.append(reply)
    for node in sorted(expected - set(counts)):
        drop(node, "no reply (a timeout or a lost connection)")
    reasons = screen([(r.images, r.weight) for r in answered], images, settings.policy)
    usable = []
    for reply, reason in zip(answered, reasons, strict=True):
        if reason is None:
            usable.append(reply)
        else:
            drop(reply.node, reason)
    return usable, dropped


def _step(round_: int, usable: list[Reply], images: torch.Tensor, velocity: torch.Tensor,
          settings: FederationSettings) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The round's new ``(S^g, velocity)``, or ``None`` when the round must keep ``S^g`` (logged)."""
    if len(usable) < settings.needed_replies:
        log.warning("round %d: %d usable replies, fewer than the quorum of %d; the set is kept for this round",
                    round_, len(usable), settings.needed_replies)
        return None
    weights = [r.weight for r in usable]
    if settings.aggregator == "fedavg":
        capped = cap_weights(weights, settings.policy)
        for reply, weight in zip(usable, capped, strict=True):
            if weight < reply.weight:
                log.warning("round %d: node %s reported %.6g examples; counted as %.6g (%g x the round's median)",
                            round_, reply.node, reply.weight, weight, settings.policy.weight_cap)
        weights = capped
    if settings.aggregator == "fltrust":
        merged, trust = fltrust(images, [r.images for r in usable], server_reference(settings, images, round_))
        for reply, score in zip(usable, trust.tolist(), strict=True):
            if score <= 0:
                log.warning("round %d: node %s's change points away from the server's own (FLTrust trust 0); "
                            "it counts for nothing", round_, reply.node)
    else:
        merged = _merge(settings, usable, weights, images)
    new_velocity = settings.server_momentum * velocity + (merged - images)
    new_images = images + new_velocity if settings.server_momentum else merged
    if not (torch.isfinite(new_images).all() and torch.isfinite(new_velocity).all()):
        log.error("round %d: the aggregate is not finite; the set is kept for this round", round_)
        return None
    return new_images, new_velocity


def _merge(settings: FederationSettings, usable: list[Reply], weights: list[float],
           images: torch.Tensor) -> torch.Tensor:
    """The aggregate of the usable replies, class by class over the replies that changed that class's images.

    A client whose label-skewed shard lacks a class returns that class's images exactly as
    sent; counting it would pull the class towards no change by the share of clients
    without it (FedDM aggregates per class for the same reason). With IID shards every
    client changes every class and this is the plain aggregate. The price: a client
    changing a class few others hold weighs more in that class, as in FedDM.
    """
    ipc, merged = settings.config.method.ipc, images.clone()
    for start in range(0, len(images), ipc):
        rows = slice(start, start + ipc)
        movers = [i for i, r in enumerate(usable) if not torch.equal(r.images[rows], images[rows])]
        if movers:
            merged[rows] = aggregate(settings.aggregator, [usable[i].images[rows] for i in movers],
                                     [weights[i] for i in movers], settings.trim).to(images.dtype)
    return merged


def _skipped_streak(history: list[dict[str, Any]]) -> int:
    streak = 0
    for entry in reversed(history):
        if not entry.get("skipped"):
            break
        streak += 1
    return streak


def _digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _identity(settings: FederationSettings) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it."""
    return {"config": config_to_dict(settings.config), "clients": settings.clients, "rounds": settings.rounds,
            "split": settings.split, "aggregator": settings.aggregator, "trim": settings.trim,
            "server_momentum": settings.server_momentum,
            "trust_root": settings.trust_root if settings.aggregator == "fltrust" else None,
            "defence": settings.defence.to_dict() if settings.defence is not None else None}


def _checkpoint(settings: FederationSettings, images: torch.Tensor, round_: int, history: list[dict[str, Any]],
                velocity: torch.Tensor) -> None:
    """Write the server's state atomically; a non-finite set never reaches the disk."""
    if not (torch.isfinite(images).all() and torch.isfinite(velocity).all()):  # _step keeps these finite
        raise AssertionError("refusing to checkpoint a non-finite global set")
    buffer = io.BytesIO()
    torch.save({"images": images, "round": round_, "history": history, "velocity": velocity,
                "identity": json.dumps(_identity(settings), sort_keys=True)}, buffer)
    settings.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(settings.checkpoint, buffer.getvalue())


def _resume(settings: FederationSettings) -> tuple[torch.Tensor, int, list[dict[str, Any]], torch.Tensor]:
    """``(S^g, first round, history, velocity)``: fresh, or from this run's checkpoint (checked)."""
    images = initial_images(settings)
    velocity = torch.zeros_like(images)
    path = settings.checkpoint
    if not path.is_file():
        return images, 0, [], velocity
    fix = f"delete {path} to start the federation over"
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        raise ConfigError(f"the server checkpoint {path} is unreadable ({type(exc).__name__}); {fix}") from None
    if not isinstance(state, dict) or "identity" not in state:
        raise ConfigError(f"{path} is not a server checkpoint of this securedd version; {fix}")
    theirs, ours = json.loads(str(state["identity"])), _identity(settings)
    for key in ours:
        if theirs.get(key) != ours[key]:
            raise ConfigError(f"the server checkpoint {path} belongs to another run: {key} was "
                              f"{theirs.get(key)!r}, now {ours[key]!r}; rerun with the old settings, or {fix}")
    kept, first, history, kept_velocity = (state.get(k) for k in ("images", "round", "history", "velocity"))
    if not (isinstance(kept, torch.Tensor) and isinstance(kept_velocity, torch.Tensor)
            and isinstance(first, int) and isinstance(history, list)
            and kept.shape == images.shape == kept_velocity.shape and kept.dtype == images.dtype
            and bool(torch.isfinite(kept).all()) and bool(torch.isfinite(kept_velocity).all())
            and 0 <= first <= settings.rounds):
        raise ConfigError(f"the server checkpoint {path} holds a set of the wrong shape, non-finite values or "
                          f"a bad round; {fix}")
    log.info("resumed the federation from %s at round %d", path, first)
    return kept, first, list(history), kept_velocity
