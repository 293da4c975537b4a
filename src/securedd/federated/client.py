"""One client's round of SFDD: the configured matching method on its shard, from the global set it was sent.

A round is :func:`~securedd.distill.base.run_method` itself -- one iteration of the
centralised method (DC, DSA, DM or any method with a real signal), started from the
global set ``S^g`` instead of the method's own initialisation, with the run seeded for
this client and round. What a client changes goes in through the run's hooks: a
client-stage :class:`~securedd.defences.Defence` (LDPO-RLD changes the label targets or
the real signal; LocalDP changes the update that leaves the client, ``S_i - S^g``) and any
extra :class:`~securedd.distill.hooks.Hooks` (a Doorping attacker's trigger, an
experiment's recorder).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from securedd.config import RunConfig
from securedd.data.spec import RealData
from securedd.defences import Defence
from securedd.distill.base import METHODS, run_method
from securedd.distill.hooks import HookChain, Hooks
from securedd.distill.synthetic import SyntheticSet
from securedd.errors import ConfigError
from securedd.rng import derive_seed, make_generator

__all__ = ["check_federated", "local_update", "round_config"]


def check_federated(config: RunConfig, defence: Defence[Any] | None = None) -> None:
    """Raise :class:`ConfigError` unless ``config``'s method can federate and ``defence`` acts on clients."""
    method_cls = METHODS.get(config.method.name)
    if method_cls.real_signal_kind is None:
        able = [n for n in METHODS.names() if METHODS.get(n).real_signal_kind is not None]
        raise ConfigError(f"federated distillation needs a method that matches a real signal "
                          f"({', '.join(able)}); '{config.method.name}' matches none")
    method_cls.parse_params(config.method.params)  # a misspelt setting fails here, not in every client's round
    if defence is not None and defence.stage != "client":
        raise ConfigError(f"'{defence.name}' is a {defence.stage}-stage defence; a client runs client-stage ones "
                          f"(the server's aggregation is the --aggregator)")


def round_config(config: RunConfig, client: int, round_: int) -> RunConfig:
    """The run config of one client's round: one iteration, seeded by the run seed, client and round."""
    return dataclasses.replace(config, seed=derive_seed(config.seed, "client", client, "round", round_),
                               method=dataclasses.replace(config.method, iterations=1, checkpoint_every=0))


def local_update(config: RunConfig, shard: RealData, images: torch.Tensor, labels: torch.Tensor, *,
                 client: int, round_: int, defence: Defence[Any] | None = None,
                 hooks: Sequence[Hooks] = ()) -> tuple[torch.Tensor, float]:
    """The client's updated set (and its mean matching loss) after one round on ``shard``.

    Args:
        config: the run config (``method.name`` a method with a real signal, and its
            settings); the seed of this update is derived from ``config.seed``, the client
            and the round.
        shard: the client's real training images.
        images: (N, C, H, W) the global set ``S^g`` as sent; not modified.
        labels: (N,) its hard labels (class-major, ``ipc`` per class).
        defence: a client-stage defence (its hooks act in the round, its ``release`` on
            the update).
        hooks: further hooks of the round, after the defence's (an attacker's, a recorder's).
    """
    check_federated(config, defence)
    seeded = round_config(config, client, round_)
    chain = HookChain(*([defence.hooks()] if defence is not None else []), *hooks)
    start = SyntheticSet(images.detach(), labels)
    result = run_method(seeded, shard, progress=False, hooks=chain, initial=start)
    update = result.synthetic.images.detach().cpu() - images
    if defence is not None:
        update = defence.release(update, make_generator(seeded.seed, "localdp"))
    return images + update, result.history[0] if result.history else float("nan")
