"""FLTrust on the server: weigh each reply by how far its direction agrees with the server's own update.

Cao et al. (NDSS 2021) give the server a small clean *root* set. Every round the server
runs the clients' own update on it from ``S^g`` (here: :func:`~securedd.federated.client.local_update`,
one iteration of the federation's matching method), which gives a reference change
``g0 = S_0 - S^g``. A client's change ``g_i = S_i - S^g`` is then

- scored by its trust ``t_i = max(0, cos(g_i, g0))``: a reply pointing away from the
  reference counts for nothing;
- rescaled to the reference's norm, ``g_i * |g0| / |g_i|``, so no client weighs more by
  moving the set further;

and the new set is ``S^g + sum_i t_i * rescaled g_i / sum_i t_i``. When no reply has
positive trust, the round keeps ``S^g``.

**Threat model.** A minority or even a majority of clients send arbitrary replies; the
server is honest and its root set is clean and drawn from the task's distribution (here,
a few images per class of the training split, drawn with the server's own seed: an
experiment's stand-in for data the server collected itself). It bounds what any reply can
do to the norm of a round's step and removes replies that disagree in direction. An
attacker whose reply points where honest ones do, but carries a payload along the way
(Doorping's trigger), keeps its trust; what it can add per round is bounded by the
reference's norm. The root set costs the server one client update per round, and it
breaks per-class averaging under label skew: the score is over the whole set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from securedd.errors import ConfigError

__all__ = ["fltrust", "trust_scores"]


def trust_scores(changes: Sequence[torch.Tensor], reference: torch.Tensor) -> torch.Tensor:
    """``max(0, cos(change_i, reference))`` for each change (float64, shape ``(len(changes),)``).

    A zero change, or a zero reference, has trust 0.

    >>> ref = torch.tensor([1.0, 0.0])
    >>> trust_scores([torch.tensor([2.0, 0.0]), torch.tensor([0.0, 3.0]), torch.tensor([-1.0, 0.0])], ref).tolist()
    [1.0, 0.0, 0.0]
    """
    ref = reference.detach().double().flatten()
    ref_norm = ref.norm()
    scores = []
    for change in changes:
        g = change.detach().double().flatten()
        if g.shape != ref.shape:
            raise ConfigError(f"a change of {g.numel()} values cannot be compared with a reference of {ref.numel()}")
        denominator = g.norm() * ref_norm
        scores.append(torch.clamp(g @ ref / denominator, min=0.0) if denominator > 0 else torch.zeros((), dtype=ref.dtype))
    return torch.stack(scores) if scores else torch.zeros(0, dtype=torch.float64)


def fltrust(sent: torch.Tensor, replies: Sequence[torch.Tensor], reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FLTrust's new set from the sent set, the replies and the server's own reply on its root set.

    Returns ``(new set, trust scores)``; the new set is ``sent`` itself when no reply has
    positive trust.
    """
    if not replies:
        raise ConfigError("no client replies to aggregate")
    base = sent.detach().double()
    changes = [r.detach().double() - base for r in replies]
    ref_change = reference.detach().double() - base
    trust = trust_scores(changes, ref_change)
    if float(trust.sum()) <= 0:
        return sent.clone(), trust
    ref_norm = ref_change.norm()
    step = torch.zeros_like(base)
    for t, change in zip(trust.tolist(), changes, strict=True):
        if t > 0:
            step += t * change * (ref_norm / change.norm())
    return (base + step / trust.sum()).to(sent.dtype), trust
