"""Server aggregation: FedAvg, unweighted mean, median, trimmed mean."""

from __future__ import annotations

import pytest
import torch

from securedd.errors import ConfigError
from securedd.federated.aggregate import aggregate


def test_fedavg_weights_by_shard_size_and_mean_does_not():
    sets = [torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)]
    assert torch.allclose(aggregate("fedavg", sets, [1, 3]), torch.full((2, 1, 2, 2), 0.75))
    assert torch.allclose(aggregate("mean", sets, [1, 3]), torch.full((2, 1, 2, 2), 0.5))


def test_robust_aggregators_ignore_a_minority_of_outliers():
    honest = [torch.full((3, 1, 2, 2), v) for v in (1.0, 1.1, 0.9, 1.05)]
    evil = [torch.full((3, 1, 2, 2), 1000.0)]
    assert aggregate("mean", honest + evil, [1] * 5).max() > 100
    assert torch.allclose(aggregate("median", honest + evil, [1] * 5), torch.full((3, 1, 2, 2), 1.05))
    assert torch.allclose(aggregate("trimmed_mean", honest + evil, [1] * 5, trim=0.2),
                          torch.full((3, 1, 2, 2), (1.0 + 1.1 + 1.05) / 3))
    even = aggregate("median", [torch.zeros(1), torch.ones(1)], [1, 1])
    assert float(even) == 0.5
    with pytest.raises(ConfigError, match="trim must be"):
        aggregate("trimmed_mean", honest, [1] * 4, trim=0.5)
    with pytest.raises(Exception, match="Valid aggregators"):
        aggregate("krum-ish", honest, [1] * 4)


def test_trimmed_mean_drops_one_value_at_each_end_from_three_replies_on():
    """At 3 or 4 clients a 0.2 share rounds down to nothing; one liar would then move every coordinate."""
    for z in (3, 4):
        honest = [torch.full((2, 1, 2, 2), 1.0 + 0.01 * i) for i in range(z - 1)]
        merged = aggregate("trimmed_mean", [*honest, torch.full((2, 1, 2, 2), 1e9)], [1] * z, trim=0.2)
        assert float(merged.max()) < 1.1
    two = aggregate("trimmed_mean", [torch.zeros(1), torch.ones(1)], [1, 1], trim=0.2)
    assert float(two) == 0.5  # two replies: nothing to trim
