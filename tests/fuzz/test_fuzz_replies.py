"""Fuzz the federated server's reply checks: any list of replies, any counts.

Allowed outcomes: a reply is refused with a reason, or it is accepted and keeps every
promise of :mod:`securedd.federated.screening` -- and whatever is accepted aggregates,
under every aggregator, to a finite set. Nothing raises.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from securedd.federated.aggregate import AGGREGATORS, aggregate
from securedd.federated.screening import ReplyPolicy, cap_weights, reply_change, screen
from tests.fuzz.harness import COUNTS, fuzz, hang_guard

SENT = torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(0))
SPECIAL = st.sampled_from([float("nan"), float("inf"), -float("inf"), 3e38, -3e38, 1e30, 1e-45, 0.0])
WEIGHTS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70),
                    st.sampled_from([True, None, "12", [1]]))


def _reply(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(["honest", "honest", "honest", "scaled", "special", "shape", "dtype", "junk"]))
    noise = torch.randn(SENT.shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 2**31))))
    if kind == "honest":
        return SENT + 0.05 * noise
    if kind == "scaled":
        return SENT + draw(st.floats(0, 1e6)) * noise
    if kind == "special":
        out = SENT.clone().view(-1)
        for _ in range(draw(st.integers(1, 3))):
            out[draw(st.integers(0, out.numel() - 1))] = draw(SPECIAL)
        return out.view(SENT.shape)
    if kind == "shape":
        return torch.zeros(draw(st.lists(st.integers(0, 4), max_size=4)))
    if kind == "dtype":
        return SENT.to(draw(st.sampled_from([torch.float64, torch.float16, torch.int64, torch.bool])))
    return draw(st.sampled_from([None, 1.0, "images", [SENT]]))


@fuzz
@given(data=st.data())
def test_any_replies_are_screened_and_what_passes_aggregates_to_a_finite_set(data) -> None:
    draw = data.draw
    replies = [(_reply(draw), draw(WEIGHTS) if draw(st.booleans()) else 100.0)
               for _ in range(draw(st.integers(0, 7)))]
    policy = ReplyPolicy()
    COUNTS["federated replies"]["cases"] += 1
    with hang_guard():
        reasons = screen(replies, SENT, policy)  # type: ignore[arg-type]
    assert len(reasons) == len(replies)
    accepted = [(r, w) for (r, w), reason in zip(replies, reasons, strict=True) if reason is None]
    COUNTS["federated replies"]["replies refused"] += len(replies) - len(accepted)
    COUNTS["federated replies"]["replies accepted"] += len(accepted)
    for images, weight in accepted:
        assert isinstance(images, torch.Tensor) and images.shape == SENT.shape and images.dtype == SENT.dtype
        assert bool(torch.isfinite(images).all()) and reply_change(images, SENT) <= policy.max_change
        assert isinstance(weight, (int, float)) and math.isfinite(weight) and 1 <= weight <= policy.max_weight
    if accepted:
        weights = cap_weights([float(w) for _, w in accepted], policy)
        for name in AGGREGATORS.names():
            merged = aggregate(name, [r for r, _ in accepted], weights)
            assert bool(torch.isfinite(merged).all()), name
