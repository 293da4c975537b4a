"""The seams of a distillation run: where defences, attacks and experiments act without patching a method.

A matching method extracts a *real signal* from real data (DC/DSA: the gradient of the
classification loss on a class's real batch; DM: the class-wise mean embeddings) and
matches the synthetic set to it. :class:`Hooks` sees that path at four points, always in
the same order inside a matching step:

1. :meth:`Hooks.network` -- every network the real signal is about to be computed with
   (a fresh one, and again after the method trained it between matching steps);
2. :meth:`Hooks.real_batch` -- every real batch a method draws, on its way in;
3. :meth:`Hooks.label_targets` -- the labels a matching loss trains against (hard labels
   by default; LDPO-RLD turns them into distributions);
4. :meth:`Hooks.real_signal` -- the real signal on its way to the match.

:meth:`Hooks.after_iteration` runs after every iteration. The defaults change nothing, so
a run without hooks is bit for bit the run it was before hooks existed. A hook reaches
the run's generators through the context :meth:`Hooks.bind` hands it; :class:`HookChain`
applies several hooks in order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from securedd.distill.base import DistillContext
    from securedd.distill.synthetic import SyntheticSet

__all__ = ["SIGNAL_KINDS", "HookChain", "Hooks", "RealSignal"]

SIGNAL_KINDS = ("gradient", "embedding")


@dataclass(frozen=True)
class RealSignal:
    """What one matching step extracted from real data, before it is matched.

    ``kind="gradient"``: ``values`` are the per-parameter gradients of the loss on one
    class's real batch (``classes`` holds that one class). ``kind="embedding"``:
    ``values`` holds one (K, D) tensor of class-wise mean embeddings, row ``i`` for class
    ``classes[i]``.
    """

    kind: str
    values: tuple[torch.Tensor, ...]
    classes: tuple[int, ...]
    mixing: torch.Tensor | None = None
    """(K', K') when a hook mixed an embedding signal's classes (row i: the weights of the
    classes in row i's target); the match mixes the synthetic class means the same way, so
    both sides of the match see the same mixture, as both sides of gradient matching see
    the same label targets."""

    def with_values(self, values: tuple[torch.Tensor, ...]) -> RealSignal:
        """The same signal carrying ``values``."""
        return replace(self, values=values)


class Hooks:
    """Points where a caller changes a run (see the module docstring); every default is a no-op.

    Subclass and override what you need, e.g.:

    >>> class CountNetworks(Hooks):
    ...     def __init__(self) -> None:
    ...         self.seen = 0
    ...     def network(self, net: torch.nn.Module) -> None:
    ...         self.seen += 1
    """

    def bind(self, ctx: DistillContext) -> None:
        """Called once by the loop with the run's context, before the method starts."""

    def network(self, net: torch.nn.Module) -> None:
        """``net`` is about to compute real signals (fresh, or just trained on the set)."""

    def real_batch(self, c: int, batch: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) real images of class ``c`` as a method drew them; returns what it uses."""
        return batch

    def label_targets(self, y_real: torch.Tensor,
                      y_syn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Targets for one class's real (n_real,) and synthetic (n_syn,) hard labels, or ``None``
        to keep them. Returns (n_real, K) and (n_syn, K) distributions when it changes them."""
        return None

    def real_signal(self, signal: RealSignal) -> RealSignal:
        """The real signal on its way to the match."""
        return signal

    def after_iteration(self, iteration: int, loss: float, syn: SyntheticSet) -> None:
        """Called after each iteration with its mean loss and the set."""


class HookChain(Hooks):
    """Several hooks applied in order (the first that changes the label targets wins)."""

    def __init__(self, *hooks: Hooks) -> None:
        self.hooks = hooks

    def bind(self, ctx: DistillContext) -> None:
        for h in self.hooks:
            h.bind(ctx)

    def network(self, net: torch.nn.Module) -> None:
        for h in self.hooks:
            h.network(net)

    def real_batch(self, c: int, batch: torch.Tensor) -> torch.Tensor:
        for h in self.hooks:
            batch = h.real_batch(c, batch)
        return batch

    def label_targets(self, y_real: torch.Tensor,
                      y_syn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        for h in self.hooks:
            targets = h.label_targets(y_real, y_syn)
            if targets is not None:
                return targets
        return None

    def real_signal(self, signal: RealSignal) -> RealSignal:
        for h in self.hooks:
            signal = h.real_signal(signal)
        return signal

    def after_iteration(self, iteration: int, loss: float, syn: SyntheticSet) -> None:
        for h in self.hooks:
            h.after_iteration(iteration, loss, syn)
