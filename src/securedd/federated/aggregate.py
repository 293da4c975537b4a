"""Combining the clients' synthetic sets on the server, and refusing replies that cannot be right.

Aggregators (registry :data:`AGGREGATORS`) take the stacked client sets ``(z, N, C, H, W)``
and per-client weights (shard sizes) and return one set:

- ``fedavg``: the mean weighted by shard size (FedAvg);
- ``mean``: the unweighted mean (as the SFDD paper averages);
- ``median``: the coordinate-wise median (robust to a minority of poisoned replies);
- ``trimmed_mean``: per coordinate, drop the ``trim`` largest and smallest share (at least
  one value at each end from three replies on) and average the rest.

The federation's server also offers ``fltrust`` (:data:`SERVER_AGGREGATORS`,
:mod:`securedd.federated.trust`): it needs the server's own update on a clean root set,
which only the server has, so it is not an aggregator of stacked sets.

The robust two are the server-stage defences of :mod:`securedd.defences.robust_aggregation`.

Which replies reach an aggregator, and the weights ``fedavg`` may use, is
:mod:`securedd.federated.screening`'s business.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from securedd.defences.robust_aggregation import coordinate_median, trimmed_mean
from securedd.errors import ConfigError
from securedd.registry import Registry

__all__ = ["AGGREGATORS", "SERVER_AGGREGATORS", "aggregate", "check_aggregator"]

Aggregator = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
AGGREGATORS: Registry[Aggregator] = Registry("aggregator")


@AGGREGATORS.register("fedavg")
def _fedavg(stack: torch.Tensor, weights: torch.Tensor, trim: float) -> torch.Tensor:
    """Mean weighted by shard size (FedAvg)."""
    w = (weights / weights.sum()).to(stack.dtype).view(-1, *([1] * (stack.dim() - 1)))
    return (stack * w).sum(0)


@AGGREGATORS.register("mean")
def _mean(stack: torch.Tensor, weights: torch.Tensor, trim: float) -> torch.Tensor:
    """Unweighted mean (the SFDD paper)."""
    return stack.mean(0)


@AGGREGATORS.register("median")
def _median(stack: torch.Tensor, weights: torch.Tensor, trim: float) -> torch.Tensor:
    """Coordinate-wise median (the ``median`` defence)."""
    return coordinate_median(stack)


@AGGREGATORS.register("trimmed_mean")
def _trimmed_mean(stack: torch.Tensor, weights: torch.Tensor, trim: float) -> torch.Tensor:
    """Per coordinate, the mean after dropping the ``trim`` share of largest and of smallest values (the
    ``trimmed-mean`` defence)."""
    return trimmed_mean(stack, trim)


SERVER_AGGREGATORS = ("fltrust",)
"""Aggregations the federation's server runs itself, beside the :data:`AGGREGATORS` of stacked sets."""


def check_aggregator(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is an aggregator the federation's server can run."""
    if name not in SERVER_AGGREGATORS and name not in AGGREGATORS.names():
        raise ConfigError(f"unknown aggregator '{name}'. Valid aggregators: "
                          f"{', '.join([*AGGREGATORS.names(), *SERVER_AGGREGATORS])}")


def aggregate(name: str, sets: list[torch.Tensor], weights: list[float], trim: float = 0.2) -> torch.Tensor:
    """Combine the clients' sets with aggregator ``name`` (see the module docstring)."""
    if not sets:
        raise ConfigError("no client replies to aggregate")
    return AGGREGATORS.get(name)(torch.stack(sets), torch.tensor(weights, dtype=torch.float64), trim)
