"""Exact reverse-mode gradients of a plain gradient-descent unroll, in constant graph memory.

An unroll takes ``N`` steps ``θ_{k+1} = θ_k − α_k g_k(θ_k, Z)`` from ``θ_0`` and ends in
a scalar ``L(θ_N)``; ``Z`` are the tensors being learned (synthetic images, soft labels).
With the adjoint ``λ_k = ∂L/∂θ_k`` (``λ_N = ∇L(θ_N)``), each step, walked backwards, gives

    ∂L/∂Z   += −α_k (∂g_k/∂Z)ᵀ λ_{k+1}       (a vector-Jacobian product)
    ∂L/∂α_k  = −g_kᵀ λ_{k+1}
    λ_k      = λ_{k+1} − α_k H_k λ_{k+1}      (H_k = ∂g_k/∂θ_k, the step loss's Hessian)

and both products come from one double-backward of ``g_kᵀ λ_{k+1}``. The forward pass
runs without a graph and keeps only ``θ_0 … θ_{N−1}``; the reverse pass rebuilds one step's
graph at a time and frees it before the next. The Hessian term is kept, so the gradients
equal those of the full differentiable unroll.

MTT's TESLA loss (:mod:`securedd.distill.unroll`) and DD's bilevel loss
(:mod:`securedd.distill.bilevel`) are both this computation with their own step gradient
and final loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["GradFn", "adjoint_unroll", "carry_gradients"]

GradFn = Callable[[int, torch.Tensor, Sequence[torch.Tensor], bool], torch.Tensor]
"""``(k, θ_k, Z, create_graph) -> g_k``: step ``k``'s gradient (P,) at ``θ_k``."""


def adjoint_unroll(grad_fn: GradFn, start: torch.Tensor, alphas: torch.Tensor, outer: Callable[[torch.Tensor],
                   torch.Tensor], learned: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor],
                                                                            torch.Tensor]:
    """The final loss, its gradients w.r.t. ``learned`` and w.r.t. each step's rate.

    Args:
        grad_fn: step ``k``'s gradient (see :data:`GradFn`); called with detached
            ``learned`` in the forward pass and with leaves that require grad in the
            reverse pass.
        start: (P,) ``θ_0``.
        alphas: (N,) the step rates (their values only).
        outer: ``θ_N -> scalar``.
        learned: the tensors ``Z`` to differentiate (values only; not modified).

    Returns:
        ``(L, [∂L/∂Z...], ∂L/∂α)``, all detached.
    """
    alphas = alphas.detach()
    values = [z.detach() for z in learned]
    thetas: list[torch.Tensor | None] = []
    theta = start.detach().clone()
    for k in range(len(alphas)):
        thetas.append(theta)
        leaf = theta.clone().requires_grad_(True)
        with torch.enable_grad():
            step = grad_fn(k, leaf, values, False)
        theta = (theta - alphas[k] * step).detach()
    final = theta.requires_grad_(True)
    with torch.enable_grad():
        value = outer(final)
        (lam,) = torch.autograd.grad(value, final)
    leaves = [z.clone().requires_grad_(True) for z in values]
    g_learned = [torch.zeros_like(z) for z in values]
    g_alphas = torch.zeros_like(alphas)
    for k in range(len(alphas) - 1, -1, -1):
        theta_k = thetas[k].requires_grad_(True)  # type: ignore[union-attr]
        with torch.enable_grad():
            grad = grad_fn(k, theta_k, leaves, True)
            parts = torch.autograd.grad((grad * lam).sum(), (theta_k, *leaves), allow_unused=True)
        for acc, part in zip(g_learned, parts[1:], strict=True):
            if part is not None:
                acc -= alphas[k] * part
        g_alphas[k] = -(grad.detach() * lam).sum()
        lam = lam - alphas[k] * parts[0]
        thetas[k] = None  # θ_k is no longer needed
        del theta_k, grad, parts
    return value.detach(), g_learned, g_alphas


class _Carry(torch.autograd.Function):
    """Returns ``value``; on backward hands ``grad_out * g`` to each input with precomputed ``g``."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, n: int, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.n = n
        ctx.save_for_backward(*tensors[n:])
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grads = ctx.saved_tensors
        return (None, None, *(grad_out * g for g in grads), *(None for _ in grads))


def carry_gradients(value: torch.Tensor, inputs: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """``value``, differentiable: ``backward()`` on it delivers ``grads`` (precomputed) to ``inputs``."""
    if len(inputs) != len(grads):
        raise ValueError(f"{len(inputs)} inputs but {len(grads)} gradients")
    out: torch.Tensor = _Carry.apply(value, len(inputs), *inputs, *grads)
    return out
