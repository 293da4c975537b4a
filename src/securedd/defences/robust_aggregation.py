"""Robust aggregation on the server: coordinate-wise median and trimmed mean.

Both take the stacked client sets ``(z, N, C, H, W)`` and return one set. They bound what
a minority of poisoned replies can do to any one coordinate; the plain mean lets one
reply move the set as far as it likes. :mod:`securedd.federated.aggregate` serves them as
the ``median`` and ``trimmed_mean`` aggregators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from securedd.defences.base import DEFENCES, Defence
from securedd.distill.base import NoParams
from securedd.errors import ConfigError

__all__ = ["CoordinateMedian", "TrimmedMean", "TrimmedMeanParams", "coordinate_median", "trimmed_mean"]


def coordinate_median(stack: torch.Tensor) -> torch.Tensor:
    """Coordinate-wise median over dim 0 (the mean of the two middle values for an even count).

    >>> coordinate_median(torch.tensor([[1.0], [5.0], [100.0]])).tolist()
    [5.0]
    """
    ordered, z = stack.sort(0).values, stack.shape[0]
    return ordered[z // 2] if z % 2 else (ordered[z // 2 - 1] + ordered[z // 2]) / 2


def trimmed_mean(stack: torch.Tensor, trim: float) -> torch.Tensor:
    """Per coordinate, the mean after dropping the ``trim`` share of largest and of smallest values.

    With three or more replies at least one value is dropped at each end, however small
    ``trim`` is: at 3 or 4 clients a 0.2 share rounds down to none, which would leave one
    poisoned reply in every coordinate's mean.

    >>> trimmed_mean(torch.tensor([[1.0], [2.0], [1e9]]), 0.2).tolist()
    [2.0]
    """
    z = stack.shape[0]
    cut = max(math.floor(trim * z), 1 if z >= 3 else 0)
    if not 0 <= trim < 0.5 or z - 2 * cut < 1:
        raise ConfigError(f"trim must be in [0, 0.5) and leave a value to average; got {trim} with {z} replies")
    ordered = stack.sort(0).values
    return ordered[cut : z - cut].mean(0)


@DEFENCES.register("median")
class CoordinateMedian(Defence[NoParams]):
    """Coordinate-wise median of the clients' sets (Yin et al. 2018).

    Threat model: fewer than half of the clients are malicious and send arbitrary sets
    (poisoning, Doorping); the server is honest. Each coordinate stays within the range of
    the honest replies; a backdoor that most clients carry survives it.
    """

    name = "median"
    Params = NoParams
    stage = "server"

    def aggregate(self, stack: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return coordinate_median(stack)


@dataclass(frozen=True)
class TrimmedMeanParams:
    """The ``trim`` share of largest and of smallest values dropped per coordinate."""

    trim: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.trim < 0.5:
            raise ConfigError(f"trim must be in [0, 0.5); got {self.trim}")


@DEFENCES.register("trimmed-mean")
class TrimmedMean(Defence[TrimmedMeanParams]):
    """Coordinate-wise trimmed mean of the clients' sets (Yin et al. 2018).

    Threat model: at most a ``trim`` share of the clients are malicious and send
    arbitrary sets; the server is honest. Extreme values are dropped per coordinate
    before averaging.
    """

    name = "trimmed-mean"
    Params = TrimmedMeanParams
    stage = "server"

    def aggregate(self, stack: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return trimmed_mean(stack, self.params.trim)
