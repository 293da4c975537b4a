"""Unrolled gradient descent on a synthetic set and its outer loss, two ways (DD, SLDD, SecDD).

A network starts from ``θ_0`` and takes ``N`` plain GD steps, step ``k`` on the synthetic
images ``X[b_k]`` (targets ``Y[b_k]``) with its own learning rate ``α_k``:

    θ_{k+1} = θ_k − α_k g_k,    g_k = ∇_θ ℓ(f(θ_k; X[b_k]), Y[b_k])

and the outer loss ``L = F(θ_N)`` (DD: the cross-entropy of ``θ_N`` on a real batch) is
differentiated with respect to ``X``, ``α`` and, for soft labels, ``Y``.

:func:`unrolled_loss` with ``memory="plain"`` builds the whole graph (its memory grows
with ``N``). ``memory="recompute"`` returns the same value and gradients with autograd
memory that does not grow with ``N`` beyond the ``N`` parameter vectors it stores: the
forward pass keeps ``θ_0 … θ_{N−1}`` only, and the reverse pass replays one step at a time
with the adjoint ``λ_k = ∂L/∂θ_k`` (``λ_N = ∇F(θ_N)``):

    ∂L/∂X += −α_k ∂(g_kᵀ λ_{k+1})/∂X        ∂L/∂Y += −α_k ∂(g_kᵀ λ_{k+1})/∂Y
    ∂L/∂α_k = −g_kᵀ λ_{k+1}                 λ_k = λ_{k+1} − α_k H_k λ_{k+1}

where every product comes from one double-backward of ``s = g_kᵀ λ_{k+1}`` (the
Hessian-vector product ``H_k λ_{k+1}`` included, so the gradient is exact).

Soft labels are label logits: a step's loss is the cross-entropy against
``softmax(Y)`` (:func:`step_loss`).

Example:
    >>> import torch
    >>> from securedd.models import create_model
    >>> net = create_model("convnet_tiny", (1, 8, 8), 2, generator=torch.Generator().manual_seed(0))
    >>> start = flat_params(net)
    >>> x = torch.randn(4, 1, 8, 8, requires_grad=True); y = torch.tensor([0, 1, 0, 1])
    >>> lrs = torch.tensor([0.02, 0.01], requires_grad=True)
    >>> plan = [torch.tensor([0, 1]), torch.tensor([2, 3])]
    >>> real_x, real_y = torch.randn(8, 1, 8, 8), torch.randint(0, 2, (8,))
    >>> outer = lambda theta: outer_cross_entropy(net, theta, real_x, real_y)
    >>> a = unrolled_loss(net, start, x, y, lrs, plan, outer, memory="plain")
    >>> b = unrolled_loss(net, start, x, y, lrs, plan, outer, memory="recompute")
    >>> bool(torch.allclose(a, b))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from securedd.data.steps import step_plan
from securedd.errors import ConfigError
from securedd.models.functional import call_flat, flat_params, param_layout

__all__ = ["MEMORY_MODES", "flat_params", "outer_cross_entropy", "raw_step_loss", "step_loss", "step_plan", "unrolled_loss"]

MEMORY_MODES = ("plain", "recompute")
StepLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def step_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against hard labels (N,), or against ``softmax`` of label logits (N, K)."""
    if targets.is_floating_point():
        return -(F.softmax(targets, dim=1) * F.log_softmax(outputs, dim=1)).sum(1).mean()
    return F.cross_entropy(outputs, targets)


def raw_step_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against unrestricted label vectors (N, K), used as they are (no ``softmax``)."""
    return -(targets * F.log_softmax(outputs, dim=1)).sum(1).mean()


def outer_cross_entropy(model: nn.Module, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                        layout: list | None = None) -> torch.Tensor:
    """Cross-entropy of ``model`` with flat parameters ``theta`` on a real batch (DD's outer loss)."""
    return F.cross_entropy(call_flat(model, theta, x, layout), y)


def _step_gradient(model: nn.Module, layout: list, theta: torch.Tensor, images: torch.Tensor,
                   targets: torch.Tensor, index: torch.Tensor, loss_fn: StepLoss, *,
                   create_graph: bool) -> torch.Tensor:
    loss = loss_fn(call_flat(model, theta, images[index], layout), targets[index])
    (grad,) = torch.autograd.grad(loss, theta, create_graph=create_graph)
    return grad


class _Precomputed(torch.autograd.Function):
    """Returns ``value``; on backward hands the precomputed gradients to images, lrs, targets."""

    @staticmethod
    def forward(ctx, value, images, lrs, targets, g_images, g_lrs, g_targets):  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(g_images, g_lrs, g_targets)
        return value.clone()

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[no-untyped-def, override]
        g_images, g_lrs, g_targets = ctx.saved_tensors
        soft = g_targets.numel() > 0
        return None, grad_out * g_images, grad_out * g_lrs, grad_out * g_targets if soft else None, None, None, None


def unrolled_loss(
    model: nn.Module,
    start: torch.Tensor,
    images: torch.Tensor,
    targets: torch.Tensor,
    lrs: torch.Tensor,
    plan: Sequence[torch.Tensor],
    outer: Callable[[torch.Tensor], torch.Tensor],
    *,
    loss_fn: StepLoss = step_loss,
    memory: str = "plain",
) -> torch.Tensor:
    """The outer loss after ``len(plan)`` differentiable GD steps from ``start`` (see the module docstring).

    Args:
        model: the architecture, called functionally (its own weights are not used).
        start: (P,) initial parameters ``θ_0`` (flat, in ``param_layout`` order).
        images: (M, C, H, W) synthetic images.
        targets: (M,) hard labels or (M, K) label logits (differentiable when learned).
        lrs: (len(plan),) the per-step learning rates.
        plan: the image indices of every step (:func:`step_plan`).
        outer: ``θ_N -> scalar`` (e.g. :func:`outer_cross_entropy` on a real batch).
        loss_fn: a step's loss of (outputs, targets).
        memory: ``plain`` (one graph over all steps) or ``recompute`` (constant graph
            memory, the same value and gradients).
    """
    if lrs.numel() != len(plan):
        raise ConfigError(f"{lrs.numel()} learning rates for {len(plan)} steps")
    layout = param_layout(model)
    if memory == "plain":
        theta = start.detach().clone().requires_grad_(True)
        for k, index in enumerate(plan):
            theta = theta - lrs[k] * _step_gradient(model, layout, theta, images, targets, index, loss_fn,
                                                    create_graph=True)
        return outer(theta)
    if memory != "recompute":
        raise ConfigError(f"memory must be one of {', '.join(MEMORY_MODES)}; got '{memory}'")
    alphas = lrs.detach()
    soft = targets.is_floating_point() and targets.requires_grad
    x, y = images.detach(), targets.detach()
    thetas: list[torch.Tensor | None] = []
    theta = start.detach().clone()
    for k, index in enumerate(plan):
        thetas.append(theta)
        leaf = theta.clone().requires_grad_(True)
        theta = (theta - alphas[k] * _step_gradient(model, layout, leaf, x, y, index, loss_fn,
                                                    create_graph=False)).detach()
    final = theta.requires_grad_(True)
    with torch.enable_grad():
        value = outer(final)
        (lam,) = torch.autograd.grad(value, final)
    g_images, g_lrs = torch.zeros_like(x), torch.zeros_like(alphas)
    g_targets = torch.zeros_like(y) if soft else torch.zeros(0, device=x.device)
    x_leaf = x.clone().requires_grad_(True)
    y_leaf = y.clone().requires_grad_(soft)
    for k in range(len(plan) - 1, -1, -1):
        theta_k = thetas[k].requires_grad_(True)  # type: ignore[union-attr]
        grad = _step_gradient(model, layout, theta_k, x_leaf, y_leaf, plan[k], loss_fn, create_graph=True)
        wrt = (theta_k, x_leaf, y_leaf) if soft else (theta_k, x_leaf)
        parts = torch.autograd.grad((grad * lam).sum(), wrt)
        g_images -= alphas[k] * parts[1]
        if soft:
            g_targets -= alphas[k] * parts[2]
        g_lrs[k] = -(grad.detach() * lam).sum()
        lam = lam - alphas[k] * parts[0]
        thetas[k] = None
    return _Precomputed.apply(value.detach(), images, lrs, targets, g_images, g_lrs, g_targets)
