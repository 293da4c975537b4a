"""The server's screening of client replies: counts, non-finite values, the fixed change caps."""

from __future__ import annotations

import math

import pytest
import torch

from securedd.errors import ConfigError
from securedd.federated.screening import ReplyPolicy, cap_weights, check_reply, reply_change, screen


def _sent() -> torch.Tensor:
    return torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _honest(sent: torch.Tensor, n: int, size: float = 0.05) -> list[torch.Tensor]:
    """``n`` replies that move ``sent`` by about ``size`` (RMS) in correlated directions."""
    gen = torch.Generator().manual_seed(1)
    common = torch.randn(sent.shape, generator=gen)
    return [sent + size * (common + 0.3 * torch.randn(sent.shape, generator=gen)) for _ in range(n)]


def test_a_reply_that_cannot_be_right_is_refused_with_its_reason():
    sent = _sent()
    assert check_reply(sent + 0.01, sent) is None
    assert "shape" in check_reply(sent[:5], sent)
    assert "dtype" in check_reply(sent.double(), sent)
    assert "not a tensor" in check_reply([1, 2], sent)
    bad = sent.clone()
    bad[0, 0, 0, 0] = float("nan")
    assert "NaN" in check_reply(bad, sent)
    assert "fixed cap" in check_reply(sent * 1e6, sent)
    huge = sent.clone()
    huge[0, 0, 0, 0] = 3e38  # finite in float32, but its square overflows: computed in float64
    assert "fixed cap" in check_reply(huge, sent)


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -800.0, 0.0, 2.5, 1e30, True, "12", None])
def test_an_example_count_a_client_may_not_choose_is_refused(weight):
    sent = _sent()
    assert "example count" in check_reply(sent + 0.01, sent, weight)


def test_fedavg_weights_are_capped_at_a_multiple_of_the_rounds_median():
    assert cap_weights([100.0, 120.0, 1e9]) == [100.0, 120.0, 240.0]
    assert cap_weights([100.0, 100.0], ReplyPolicy(weight_cap=4.0)) == [100.0, 100.0]
    assert cap_weights([]) == []


def test_a_change_far_above_the_other_replies_is_refused_and_honest_ones_pass():
    sent = _sent()
    honest = _honest(sent, 4)
    evil = sent + 10 * (honest[0] - sent)  # ten times an honest change
    reasons = screen([(r, 100.0) for r in [*honest, evil]], sent)
    assert reasons[:4] == [None] * 4
    assert "this round's cap" in reasons[4]


def test_with_fewer_than_three_replies_only_the_fixed_cap_applies():
    sent = _sent()
    honest = _honest(sent, 1)[0]
    assert screen([(honest, 1.0), (sent + 5 * (honest - sent), 1.0)], sent) == [None, None]
    assert "fixed cap" in screen([(honest, 1.0), (sent + 1e3, 1.0)], sent)[1]


def test_the_cap_does_not_grow_with_the_set_a_client_inflated_before():
    """The spread-relative cap let a client raise it about 34x a round; this one is fixed by the round's input."""
    sent = _sent()
    caps = []
    for _ in range(20):
        honest = _honest(sent, 4)
        forged = sent.clone()
        forged[0] = sent.max() + 99 * sent.std()  # just inside the old cap, every round
        reasons = screen([(r, 1.0) for r in [*honest, forged]], sent)
        assert reasons[:4] == [None] * 4 and reasons[4] is not None
        caps.append(max(reply_change(r, sent) for r in honest))
        sent = torch.stack(honest).mean(0)  # the forged reply never gets in
    assert float(sent.abs().max()) < 10 and max(caps) < 0.2


def test_the_policy_refuses_limits_that_would_disable_it():
    for bad in ({"max_change": math.inf}, {"spread": 0.0}, {"floor": -1.0}, {"weight_cap": 0.5},
                {"max_weight": math.nan}):
        with pytest.raises(ConfigError, match="reply policy"):
            ReplyPolicy(**bad)
