"""Doorping: malicious SFDD workers plant a backdoor in the shared set (REFERENCE section 4).

A malicious worker stamps a 2x2 trigger one pixel in from the bottom-right corner on 1%
of its shard and relabels those images to the target class. Every time its network
changes (a fresh network each round, and after each inner-loop training), it re-optimises
the trigger, and only the trigger, with Adam (lr 0.08, at most 1000 steps) so that the
penultimate layer's top neuron (the one with the largest sum of absolute weights into the
classifier) fires at 10x its initial activation; then it re-stamps its poisoned images and
matches gradients on them as an honest worker would. The trigger lives only on the worker,
from round to round (``state``).

The stopping rule differs from REFERENCE's "loss below 0.5", an absolute squared error
tied to the original network's activation scale: the penultimate activations of our
normalised ConvNets are about 0.1, so that rule holds before the first step and the trigger
would never change. The loss here is the squared gap relative to the goal, and the
optimisation stops once it is below ``stop`` (0.01: within 10% of 10x), or once it has not
improved on its best by a relative ``1e-4`` for ``patience`` steps. A 2x2 patch held in
the valid pixel range cannot drive a neuron to 10x: the goal is out of reach, so without the
plateau rule every network change costs all ``steps`` steps. ``benchmarks/doorping_steps.py``
measures the rule on two MNIST networks: it stops after 61 and 102 steps at the activation
all 1000 steps reach, to five digits, in a tenth of the time.

Metrics on networks trained on the final set: clean test accuracy (CTA) and the attack
success rate (ASR), the share of stamped test images classified as the target, over the
test images whose class is not the target (and, as ``asr_inclusive``, over all of them).

:func:`arm` turns an honest worker into an attacker: its poisoned shard, and the hooks
(:class:`~securedd.distill.hooks.Hooks`) that re-optimise the trigger on every network
of the round and re-stamp the poisoned images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from securedd.data.spec import DatasetSpec, RealData
from securedd.distill.hooks import Hooks
from securedd.errors import ConfigError
from securedd.models.protocols import EmbeddingClassifier, has_linear_head
from securedd.rng import make_generator
from securedd.training import inference_batch

if TYPE_CHECKING:
    from securedd.distill.base import DistillContext

__all__ = ["Doorping", "arm", "attack_success", "trigger_pixels", "optimise_trigger", "pixel_bounds", "poisoned_indices", "stamp",
           "top_neuron", "trigger_mask"]


@dataclass(frozen=True)
class Doorping:
    """The attack's settings. ``malicious``: workers 0..malicious-1 (``None``: (z - 1) // 2).

    ``batch``: stamped images per trigger step, drawn afresh each step (0: all of the
    worker's poisoned images every step). The up to ``steps`` trigger steps at every
    network change dominate an attacker's round, each a forward and backward pass over the
    images it uses; a batch makes a step's cost independent of the shard's size.
    ``patience``: stop once the loss has not improved on its best (by a relative 1e-4) for
    this many steps (0: only ``stop`` and ``steps`` end it, REFERENCE's rule).
    ``bounded``: keep the trigger inside the valid pixel range, a patch a real image can
    carry (the default). ``False`` is the original attack's unconstrained trigger: its
    values leave that range, so it can only be stamped on images after normalisation.
    """

    malicious: int | None = None
    target: int = 0
    rate: float = 0.01
    lr: float = 0.08
    steps: int = 1000
    stop: float = 0.01
    boost: float = 10.0
    batch: int = 0
    patience: int = 50
    bounded: bool = True

    def __post_init__(self) -> None:
        if self.batch < 0 or self.steps < 1 or self.patience < 0:
            raise ConfigError(f"Doorping needs batch >= 0, steps >= 1 and patience >= 0; got batch {self.batch}, "
                              f"steps {self.steps}, patience {self.patience}")

    def count(self, clients: int) -> int:
        """How many of ``clients`` workers the attacker controls."""
        n = (clients - 1) // 2 if self.malicious is None else self.malicious
        if not 0 <= n <= clients:
            raise ConfigError(f"Doorping needs 0 <= malicious <= clients; got {n} of {clients}")
        return n

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def trigger_mask(spec: DatasetSpec) -> torch.Tensor:
    """(1, H, W) mask of the 2x2 patch one pixel in from the bottom-right corner."""
    mask = torch.zeros((1, spec.height, spec.width))
    mask[:, spec.height - 3 : spec.height - 1, spec.width - 3 : spec.width - 1] = 1
    return mask


def stamp(images: torch.Tensor, trigger: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``images`` with the trigger's pixels inside the mask (normalised space)."""
    return images * (1 - mask) + trigger * mask


def top_neuron(net: EmbeddingClassifier) -> int:
    """The penultimate unit with the largest sum of absolute weights into the classifier."""
    return int(net.classifier.weight.detach().abs().sum(0).argmax())


def trigger_pixels(trigger: torch.Tensor, spec: DatasetSpec) -> list[float]:
    """The patch's four pixel values (channel means), not clamped: an unbounded trigger leaves [0, 1]."""
    std = torch.tensor(spec.std).view(-1, 1, 1)
    mean = torch.tensor(spec.mean).view(-1, 1, 1)
    pixels = (trigger.detach().float().cpu().reshape(spec.shape) * std + mean).mean(0)
    return [float(v) for v in pixels[trigger_mask(spec)[0] > 0]]


def pixel_bounds(spec: DatasetSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised values of pixel 0 and pixel 1, per channel, as (C, 1, 1) tensors."""
    return spec.normalize(torch.zeros(spec.shape))[:, :1, :1], spec.normalize(torch.ones(spec.shape))[:, :1, :1]


def optimise_trigger(net: torch.nn.Module, trigger: torch.Tensor, mask: torch.Tensor, images: torch.Tensor,
                     settings: Doorping = Doorping(), *, bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Re-optimise the trigger on ``net`` (frozen); returns ``(trigger, steps taken)``.

    The loss is the mean squared gap between the top neuron's activation on the stamped
    ``images`` and ``boost`` times its activation with the trigger as it came in, relative
    to the square of that goal. With ``bounds`` (:func:`pixel_bounds`) every step is
    projected back into the valid pixel range, so the trigger can be stamped on a real
    image; without them, the boosted goal drives its values far outside that range. With
    ``settings.batch``, each step uses that many of ``images``, drawn with ``generator``.
    The optimisation ends at ``settings.steps``, below ``settings.stop``, or after
    ``settings.patience`` steps without a new best loss.
    """
    if not has_linear_head(net):
        raise ConfigError("Doorping needs a network with a penultimate layer (embed) and a linear classifier")
    unit = top_neuron(net)
    with torch.no_grad():
        goal = settings.boost * net.embed(stamp(images, trigger, mask))[:, unit].mean()
        scale = goal.abs().clamp_min(1e-3) ** 2
    low, high = (b.to(trigger.device) for b in bounds) if bounds is not None else (None, None)
    trigger = trigger.detach().clone()
    if low is not None and high is not None:
        trigger = torch.maximum(torch.minimum(trigger, high), low)
    trigger.requires_grad_(True)
    opt = torch.optim.Adam([trigger], lr=settings.lr)
    steps, best, best_step = 0, float("inf"), 0
    for steps in range(1, settings.steps + 1):  # noqa: B007 - the count is returned
        batch = images
        if 0 < settings.batch < len(images):
            pick = torch.randperm(len(images), generator=generator, device=generator.device if generator else None)
            batch = images[pick[: settings.batch].to(images.device)]
        loss = F.mse_loss(net.embed(stamp(batch, trigger, mask))[:, unit], goal.expand(len(batch))) / scale
        value = float(loss.detach())
        if value < settings.stop:
            break
        if value < best * (1 - 1e-4):
            best, best_step = value, steps
        elif settings.patience and steps - best_step >= settings.patience:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        if low is not None and high is not None:
            with torch.no_grad():
                trigger.copy_(torch.maximum(torch.minimum(trigger, high), low))
    for p in net.parameters():
        p.grad = None
    return trigger.detach(), steps


def poisoned_indices(shard: RealData, settings: Doorping, seed: int, client: int) -> torch.Tensor:
    """The shard images this worker stamps: ``rate`` of them (at least one), outside the target class."""
    candidates = torch.nonzero(shard.labels != settings.target).flatten()
    n = max(1, round(settings.rate * len(shard)))
    if len(candidates) < n:
        raise ConfigError(f"client {client}'s shard has {len(candidates)} images outside the target class; "
                          f"Doorping needs {n}")
    gen = make_generator(seed, "doorping", "poison", client)
    return candidates[torch.randperm(len(candidates), generator=gen)[:n]]


def arm(shard: RealData, settings: Doorping, state: dict[str, torch.Tensor], seed: int,
        client: int) -> tuple[RealData, Hooks]:
    """A malicious worker's round inputs: a copy of its shard with the poisoned images relabelled
    to the target (stamped by the hooks), and the hooks that keep the trigger in ``state``."""
    index = poisoned_indices(shard, settings, seed, client)
    labels = shard.labels.clone()
    labels[index] = settings.target
    return RealData(shard.images.clone(), labels, shard.spec), _Trigger(index, settings, state, seed, client)


class _Trigger(Hooks):
    """Re-optimise the trigger whenever the round's network changes, and re-stamp the poisoned images."""

    def __init__(self, index: torch.Tensor, settings: Doorping, state: dict[str, torch.Tensor], seed: int,
                 client: int) -> None:
        self.index, self.settings, self.state, self.seed, self.client = index, settings, state, seed, client

    def bind(self, ctx: DistillContext) -> None:
        self.real = ctx.real.images  # the sampler draws from this tensor: stamping it poisons the batches
        self.base, self.mask = self.real[self.index].clone(), trigger_mask(ctx.spec).to(self.real.device)
        self.bounds = pixel_bounds(ctx.spec) if self.settings.bounded else None
        self.steps_gen = ctx.generator("doorping/steps")  # the round's own seed
        if "trigger" not in self.state:
            self.state["trigger"] = torch.randn(ctx.spec.shape,
                                                generator=make_generator(self.seed, "doorping", "trigger", self.client))

    def network(self, net: torch.nn.Module) -> None:
        trigger = self.state["trigger"].to(self.real.device)
        self.state["trigger"], _ = optimise_trigger(net, trigger, self.mask, self.base, self.settings,
                                                    bounds=self.bounds, generator=self.steps_gen)
        self.real[self.index] = stamp(self.base, self.state["trigger"], self.mask)


def attack_success(model: torch.nn.Module, test: RealData, trigger: torch.Tensor, mask: torch.Tensor,
                   target: int, batch: int | None = None) -> dict[str, float]:
    """ASR (%) over test images not of the target class, and over all of them."""
    model.eval()
    batch = batch or inference_batch(test.images)
    hits, labels = [], []
    with torch.no_grad():
        for start in range(0, len(test), batch):
            x = stamp(test.images[start : start + batch].float(), trigger, mask)
            hits.append(model(x).argmax(1) == target)
            labels.append(test.labels[start : start + batch])
    hit, label = torch.cat(hits), torch.cat(labels)
    others = label != target
    return {"asr": 100 * float(hit[others].float().mean()), "asr_inclusive": 100 * float(hit.float().mean())}
