"""One client's round of SFDD: gradient matching on its shard, from the global set it was sent.

The update is centralised DC's (or DSA's) iteration, the same code (:class:`DCMethod`),
not a second implementation: a fresh network seeded for this client and round, the outer
loop of matching steps on the shard's real images with the network trained on the set
between them (the inner loop). The client returns its updated copy of the set. Defences
(:class:`Defence`) change the matching loss's labels (LDPO-RLD) or the returned update
(LocalDP).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from securedd.config import RunConfig
from securedd.data.spec import RealData
from securedd.distill.base import METHODS, DistillContext
from securedd.distill.gradient_matching import DCMethod
from securedd.errors import ConfigError
from securedd.federated.defences import DISPERSIONS, DRAWS, gaussian_local_dp, laplace_local_dp, ldpo_rld_targets
from securedd.federated.doorping import Doorping, optimise_trigger, poisoned_indices, stamp, trigger_mask
from securedd.rng import derive_seed, make_generator

__all__ = ["DEFENCES", "Defence", "local_update"]

DEFENCES = ("none", "ldpo-rld", "localdp-laplace", "localdp-gaussian")


@dataclass(frozen=True)
class Defence:
    """A client-side defence and its settings (REFERENCE section 4).

    ``ldpo-rld``: ``k`` other classes, mass ``eps``, ``dispersion`` linear or uniform,
    ``draw`` per class (one distribution for a class's real and synthetic images in a
    matching step, the paper's ``Lin(y_c, k, eps)``) or per image.
    ``localdp-laplace``: per-coordinate ``clamp`` and Laplace ``scale`` (the paper's).
    ``localdp-gaussian``: L2 ``clip`` of the update and ``noise_multiplier``.
    """

    kind: str = "none"
    k: int = 9
    eps: float = 9 / 11
    dispersion: str = "linear"
    draw: str = "class"
    clamp: float = 1.0
    scale: float = 0.1
    clip: float = 1.0
    noise_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in DEFENCES:
            raise ConfigError(f"the defence must be one of {', '.join(DEFENCES)}; got '{self.kind}'")
        if self.kind == "ldpo-rld" and self.dispersion not in DISPERSIONS:
            raise ConfigError(f"the LDPO-RLD dispersion must be one of {', '.join(DISPERSIONS)}; "
                              f"got '{self.dispersion}'")
        if self.kind == "ldpo-rld" and self.draw not in DRAWS:
            raise ConfigError(f"the LDPO-RLD draw must be one of {', '.join(DRAWS)}; got '{self.draw}'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def local_update(config: RunConfig, shard: RealData, images: torch.Tensor, labels: torch.Tensor, *,
                 client: int, round_: int, defence: Defence = Defence(), doorping: Doorping | None = None,
                 state: dict[str, torch.Tensor] | None = None,
                 tap: Callable[[DCMethod], None] | None = None) -> tuple[torch.Tensor, float]:
    """The client's updated set (and its mean matching loss) after one round on ``shard``.

    Args:
        config: the run config (``method.name`` dc or dsa and its settings); the seed of
            this update is derived from ``config.seed``, the client and the round.
        shard: the client's real training images.
        images: (N, C, H, W) the global set ``S^g`` as sent; not modified.
        labels: (N,) its hard labels (class-major, ``ipc`` per class).
        doorping: this client is a Doorping attacker with these settings; its trigger is
            kept in ``state`` (a dict the caller keeps for this client from round to round).
        tap: called with the round's method object before it runs (experiments use it to
            record the real batches the client drew, the ground truth of the leakage attack).
    """
    method_cls = METHODS.get(config.method.name)
    if not issubclass(method_cls, DCMethod):
        raise ConfigError(f"federated distillation runs gradient matching (dc or dsa); got '{config.method.name}'")
    seeded = dataclasses.replace(config, seed=derive_seed(config.seed, "client", client, "round", round_))
    poisoned = None
    if doorping is not None:
        shard, poisoned = _poison(shard, doorping, config.seed, client)
    ctx = DistillContext(seeded, shard)
    method = method_cls(method_cls.parse_params(config.method.params), ctx)
    if poisoned is not None:
        _arm_doorping(method, poisoned, doorping, state if state is not None else {}, config.seed, client)
    if defence.kind == "ldpo-rld":
        gen = ctx.generator("ldpo-rld")
        k = shard.spec.num_classes

        def dispersed(y_real: torch.Tensor, y_syn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            targets = ldpo_rld_targets(torch.cat([y_real, y_syn]), k, defence.k, defence.eps, defence.dispersion,
                                       gen, defence.draw)
            return targets[: len(y_real)], targets[len(y_real):]

        method.label_targets = dispersed
    if tap is not None:
        tap(method)
    syn = method.init_synthetic()
    syn = dataclasses.replace(syn, images=images.detach().clone().to(ctx.device).requires_grad_(True),
                              labels=labels.to(ctx.device))
    opt = method.optimizer(syn)
    losses = []
    for loss in method.losses(syn, round_):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    update = syn.images.detach().cpu() - images
    gen = make_generator(seeded.seed, "localdp")
    if defence.kind == "localdp-laplace":
        update = laplace_local_dp(update, defence.clamp, defence.scale, gen)
    elif defence.kind == "localdp-gaussian":
        update = gaussian_local_dp(update, defence.clip, defence.noise_multiplier, gen)
    return images + update, sum(losses) / max(len(losses), 1)


def _poison(shard: RealData, doorping: Doorping, seed: int, client: int) -> tuple[RealData, torch.Tensor]:
    """A copy of the shard with the poisoned images relabelled to the target (stamped later)."""
    index = poisoned_indices(shard, doorping, seed, client)
    labels = shard.labels.clone()
    labels[index] = doorping.target
    return RealData(shard.images.clone(), labels, shard.spec), index


def _arm_doorping(method: DCMethod, index: torch.Tensor, doorping: Doorping, state: dict[str, torch.Tensor],
                  seed: int, client: int) -> None:
    """Re-optimise the trigger whenever the round's network changes, and re-stamp the poisoned images."""
    ctx = method.ctx
    real = ctx.real.images
    base, mask = real[index].clone(), trigger_mask(ctx.spec).to(real.device)
    if "trigger" not in state:
        state["trigger"] = torch.randn(ctx.spec.shape, generator=make_generator(seed, "doorping", "trigger", client))
    new_model, train_net = ctx.new_model, method._train_net

    def restamp(net: torch.nn.Module) -> None:
        state["trigger"], _ = optimise_trigger(net, state["trigger"].to(real.device), mask, base, doorping)
        real[index] = stamp(base, state["trigger"], mask)

    def model(name: str | None = None, purpose: str = "model", **kwargs: Any) -> torch.nn.Module:
        net = new_model(name, purpose, **kwargs)
        if purpose == "dc/net":
            restamp(net)
        return net

    def trained(net: torch.nn.Module, opt: torch.optim.Optimizer, syn: Any) -> None:
        train_net(net, opt, syn)
        restamp(net)

    ctx.new_model, method._train_net = model, trained  # type: ignore[method-assign]
