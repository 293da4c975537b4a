"""Which client replies the server may aggregate: it trusts no client.

A reply is screened in three steps (:func:`screen`):

1. **On its own** (:func:`check_reply`): a tensor of the shape and dtype that was sent,
   every value finite, a reported example count that is a finite whole number in
   ``[1, policy.max_weight]``, and an RMS change from the sent set no larger than
   ``policy.max_change`` (a fixed cap, in units of the normalised data; an honest round of
   gradient or distribution matching moves the set by about 0.02 to 0.06).
2. **Against the round's other replies**: with at least three replies left, a reply whose
   change from the set it was given is larger than ``median + spread * s`` of the round's
   changes is refused, where ``s = max(1.4826 * MAD, floor * median)`` (the MAD's
   normal-consistent scale, floored so that near-identical honest changes do not make the
   cap vanish). The cap depends on this round's input only, never on the previous set's
   spread, so a client cannot raise it by degrees: round after round it stays a fixed
   multiple of what honest clients move the set by.
3. **Against the round's consensus**: of the replies still in (again at least three), one
   whose RMS distance from their coordinate-wise median is above the same robust cap of
   those distances is refused. Honest clients with shards from one distribution move the
   set in similar directions; a change of honest size in a direction of its own is caught
   here. What remains possible is a bias of about the honest replies' own disagreement
   per round: robust statistics cannot tell a liar from an unusual honest client below it.

Example counts weigh replies only under ``fedavg``; there, :func:`cap_weights` clips every
count to ``policy.weight_cap`` times the round's median count, so a client that reports
``1e30`` examples counts as ``weight_cap`` honest clients at most. The paper's ``mean``
ignores counts altogether.

Every refusal comes back with its reason, for the server's log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from securedd.defences.robust_aggregation import coordinate_median
from securedd.errors import ConfigError

__all__ = ["ReplyPolicy", "cap_weights", "check_reply", "reply_change", "screen"]


@dataclass(frozen=True)
class ReplyPolicy:
    """The server's limits on what a client reply may be (see the module docstring)."""

    max_change: float = 10.0
    """The largest RMS change of a reply from the set it was sent (normalised units; fixed across rounds)."""
    spread: float = 3.0
    """How many robust standard deviations above the round's median change a reply may move the set."""
    floor: float = 0.25
    """The robust scale is at least this share of the median change."""
    weight_cap: float = 2.0
    """``fedavg``: an example count counts as at most this multiple of the round's median count."""
    max_weight: float = float(2**31)
    """The largest example count a client may report at all."""

    def __post_init__(self) -> None:
        for name in ("max_change", "spread", "floor", "weight_cap", "max_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"reply policy: {name} must be a finite number > 0; got {value!r}")
        if self.weight_cap < 1:
            raise ConfigError(f"reply policy: weight_cap must be >= 1; got {self.weight_cap}")


def reply_change(reply: torch.Tensor, sent: torch.Tensor) -> float:
    """RMS of ``reply - sent``, in float64 (no overflow to Inf for finite float32 values)."""
    return float((reply.double() - sent.double()).pow(2).mean().sqrt())


def check_reply(reply: object, sent: torch.Tensor, weight: object = 1.0,
                policy: ReplyPolicy | None = None) -> str | None:
    """Why ``reply`` must be refused on its own, or ``None`` when it may go on to :func:`screen`."""
    return _check(reply, sent, weight, policy or ReplyPolicy())[0]


def _check(reply: object, sent: torch.Tensor, weight: object, policy: ReplyPolicy) -> tuple[str | None, float]:
    """``(reason or None, RMS change)``: :func:`check_reply`, keeping the change it computed."""
    if not isinstance(reply, torch.Tensor):
        return f"not a tensor ({type(reply).__name__})", math.nan
    if reply.shape != sent.shape:
        return f"shape {tuple(reply.shape)}, expected {tuple(sent.shape)}", math.nan
    if reply.dtype != sent.dtype:
        return f"dtype {reply.dtype}, expected {sent.dtype}", math.nan
    if not torch.isfinite(reply).all():
        return "NaN or Inf values", math.nan
    reason = _check_weight(weight, policy)
    if reason is not None:
        return reason, math.nan
    change = reply_change(reply, sent)
    if change > policy.max_change:
        return f"RMS change {change:.3g} from the sent set, above the fixed cap {policy.max_change:g}", change
    return None, change


def _check_weight(weight: object, policy: ReplyPolicy) -> str | None:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        return f"example count {weight!r} is not a number"
    if not math.isfinite(weight) or weight != math.floor(weight) or not 1 <= weight <= policy.max_weight:
        return f"example count {weight!r} is not a whole number in [1, {policy.max_weight:.0f}]"
    return None


def screen(replies: list[tuple[torch.Tensor, float]], sent: torch.Tensor,
           policy: ReplyPolicy | None = None) -> list[str | None]:
    """For each ``(images, example count)`` reply, why it is refused, or ``None`` to aggregate it."""
    policy = policy or ReplyPolicy()
    checked = [_check(images, sent, weight, policy) for images, weight in replies]
    reasons = [reason for reason, _ in checked]
    passed = [i for i, reason in enumerate(reasons) if reason is None]
    if len(passed) < 3:
        return reasons
    changes = {i: checked[i][1] for i in passed}
    for i, reason in _outliers(changes, policy, "change from the sent set").items():
        reasons[i] = reason
    passed = [i for i in passed if reasons[i] is None]
    if len(passed) >= 3:
        centre = coordinate_median(torch.stack([replies[i][0] for i in passed]))
        deviations = {i: reply_change(replies[i][0], centre) for i in passed}
        for i, reason in _outliers(deviations, policy, "distance from the replies' coordinate-wise median").items():
            reasons[i] = reason
    return reasons


def _outliers(values: dict[int, float], policy: ReplyPolicy, what: str) -> dict[int, str]:
    """The keys whose value is above ``median + spread * max(1.4826 MAD, floor * median)``, with reasons."""
    column = torch.tensor(list(values.values()), dtype=torch.float64)
    median = float(column.median())  # the lower middle value: an attacker cannot pull it up alone
    mad = float((column - median).abs().median())
    scale = max(1.4826 * mad, policy.floor * median)
    cap = median + policy.spread * scale
    return {i: (f"RMS {what} {v:.3g}, above this round's cap {cap:.3g} (median {median:.3g} + "
                f"{policy.spread:g} x scale {scale:.3g})") for i, v in values.items() if v > cap}


def cap_weights(weights: list[float], policy: ReplyPolicy | None = None) -> list[float]:
    """``fedavg``'s weights: each count clipped to ``weight_cap`` times the round's median count."""
    policy = policy or ReplyPolicy()
    if not weights:
        return []
    limit = policy.weight_cap * float(torch.tensor(weights, dtype=torch.float64).median())
    return [min(w, limit) for w in weights]
