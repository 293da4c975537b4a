"""Hostile clients, for experiments on the server's screening: workers that lie in their replies.

Each kind (registry :data:`TAMPERS`) turns a worker's honest reply -- the set it computed
and its true example count -- into the reply it sends:

- ``weight``: the honest set with a forged example count (``1e30``, NaN, -800, Inf...),
  which under plain FedAvg would make the aggregate the attacker's set, or NaN;
- ``range``: the exploit of a cap relative to the previous set's spread: every value of
  the first image pushed to 99 standard deviations above the sent set's maximum, which
  under such a cap raises the next round's cap by a factor in the tens, round after round;
- ``near-bound``: an adaptive attacker that knows the server's
  :class:`~securedd.federated.screening.ReplyPolicy`. It moves the set along one fixed
  direction, every round, by ``margin`` times the largest change it expects the cap to
  let through (its own honest change times ``1 + spread * floor``), to drag ``S^g``
  away by accumulation.

Workers ``0..workers-1`` are hostile (the Doorping convention). A real server would not
know; the artifact records the experiment's settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from securedd.errors import ConfigError
from securedd.federated.screening import ReplyPolicy
from securedd.registry import Registry
from securedd.rng import make_generator

__all__ = ["TAMPERS", "Hostile"]


@dataclass(frozen=True)
class Hostile:
    """The experiment: which workers lie, and how."""

    kind: str
    workers: int = 1
    weight: float = 1e30
    """``weight``: the example count the hostile workers report."""
    margin: float = 0.95
    """``near-bound``: the share of the expected cap the change uses."""

    def __post_init__(self) -> None:
        TAMPERS.get(self.kind)
        if self.workers < 0:
            raise ConfigError(f"hostile workers must be >= 0; got {self.workers}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def tamper(self, sent: torch.Tensor, honest: torch.Tensor, size: float, *, seed: int, worker: int,
               policy: ReplyPolicy | None = None) -> tuple[torch.Tensor, float]:
        """The ``(images, example count)`` worker ``worker`` sends instead of ``(honest, size)``."""
        if worker >= self.workers:
            return honest, size
        return TAMPERS.get(self.kind)(self, sent, honest, size, seed, policy or ReplyPolicy())


Tamper = Callable[[Hostile, torch.Tensor, torch.Tensor, float, int, ReplyPolicy], tuple[torch.Tensor, float]]
TAMPERS: Registry[Tamper] = Registry("hostile reply")


@TAMPERS.register("weight")
def _weight(h: Hostile, sent: torch.Tensor, honest: torch.Tensor, size: float, seed: int,
            policy: ReplyPolicy) -> tuple[torch.Tensor, float]:
    """The honest set with a forged example count."""
    return honest, float(h.weight)


@TAMPERS.register("range")
def _range(h: Hostile, sent: torch.Tensor, honest: torch.Tensor, size: float, seed: int,
           policy: ReplyPolicy) -> tuple[torch.Tensor, float]:
    """The first image's values 99 standard deviations above the sent set's maximum."""
    forged = honest.clone()
    forged[0] = sent.max() + 99.0 * sent.std()
    return forged, size


@TAMPERS.register("near-bound")
def _near_bound(h: Hostile, sent: torch.Tensor, honest: torch.Tensor, size: float, seed: int,
                policy: ReplyPolicy) -> tuple[torch.Tensor, float]:
    """A fixed-direction change just under the cap the attacker expects."""
    own = float((honest.double() - sent.double()).pow(2).mean().sqrt())
    step = h.margin * own * (1.0 + policy.spread * policy.floor)
    direction = torch.randn(sent.shape, generator=make_generator(seed, "hostile", "direction"), dtype=torch.float64)
    direction = direction / direction.pow(2).mean().sqrt()
    return (sent.double() + step * direction).to(sent.dtype), size
