"""Server aggregation: FedAvg, unweighted mean, median, trimmed mean; refused replies."""

from __future__ import annotations

import pytest
import torch

from securedd.errors import ConfigError
from securedd.federated.aggregate import aggregate, check_reply


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


def test_replies_that_cannot_be_right_are_refused_with_the_reason():
    sent = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert check_reply(sent + 0.01, sent) is None
    assert "shape" in check_reply(sent[:5], sent)
    assert "dtype" in check_reply(sent.double(), sent)
    bad = sent.clone()
    bad[0, 0, 0, 0] = float("nan")
    assert "NaN" in check_reply(bad, sent)
    assert "standard deviations" in check_reply(sent * 1e6, sent)
    assert "not a tensor" in check_reply([1, 2], sent)
