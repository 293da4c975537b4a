"""Combining the clients' synthetic sets on the server, and refusing replies that cannot be right.

Aggregators (registry :data:`AGGREGATORS`) take the stacked client sets ``(z, N, C, H, W)``
and per-client weights (shard sizes) and return one set:

- ``fedavg``: the mean weighted by shard size (FedAvg);
- ``mean``: the unweighted mean (as the SFDD paper averages);
- ``median``: the coordinate-wise median (robust to a minority of poisoned replies);
- ``trimmed_mean``: per coordinate, drop the ``trim`` largest and smallest share (at least
  one value at each end from three replies on) and average the rest;
- ``fltrust``: each reply's change rescaled to the norm of the server's own change on a
  small clean root set and weighed by their cosine agreement
  (:mod:`securedd.federated.trust`; run by the federation's server, which holds the root set).

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

__all__ = ["AGGREGATORS", "aggregate"]

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


@AGGREGATORS.register("fltrust")
def _fltrust(stack: torch.Tensor, weights: torch.Tensor, trim: float) -> torch.Tensor:
    """FLTrust: replies weighed by their agreement with the server's own update on a clean root set
    (:mod:`securedd.federated.trust`); the federation's server runs it, as it needs that update."""
    raise ConfigError("fltrust needs the server's own update on its root set: the federation's server "
                      "(securedd federate --aggregator fltrust) runs it, not aggregate()")


def aggregate(name: str, sets: list[torch.Tensor], weights: list[float], trim: float = 0.2) -> torch.Tensor:
    """Combine the clients' sets with aggregator ``name`` (see the module docstring)."""
    if not sets:
        raise ConfigError("no client replies to aggregate")
    return AGGREGATORS.get(name)(torch.stack(sets), torch.tensor(weights, dtype=torch.float64), trim)
