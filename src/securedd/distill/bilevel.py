"""Unrolled gradient descent on a synthetic set and its outer loss, two ways (DD, SLDD, SecDD).

A network starts from ``θ_0`` and takes ``N`` plain GD steps, step ``k`` on the synthetic
images ``X[b_k]`` (targets ``Y[b_k]``) with its own learning rate ``α_k``:

    θ_{k+1} = θ_k − α_k g_k,    g_k = ∇_θ ℓ(f(θ_k; X[b_k]), Y[b_k])

and the outer loss ``L = F(θ_N)`` (DD: the cross-entropy of ``θ_N`` on a real batch) is
differentiated with respect to ``X``, ``α`` and, for soft labels, ``Y``.

:func:`unrolled_loss` with ``memory="plain"`` builds the whole graph (its memory grows
with ``N``). ``memory="recompute"`` returns the same value and gradients with autograd
memory that does not grow with ``N`` beyond the ``N`` parameter vectors it stores: the
exact adjoint computation of :mod:`securedd.distill.adjoint` (Hessian-vector products
included).

Soft labels are label logits: a step's loss is the cross-entropy against ``softmax(Y)``
(:func:`step_loss`), or against ``Y`` itself for unrestricted labels (:func:`raw_step_loss`).

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
from securedd.distill.adjoint import adjoint_unroll, carry_gradients
from securedd.errors import ConfigError
from securedd.models.functional import ParamLayout, call_flat, flat_params, param_layout

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
                        layout: ParamLayout | None = None) -> torch.Tensor:
    """Cross-entropy of ``model`` with flat parameters ``theta`` on a real batch (DD's outer loss)."""
    return F.cross_entropy(call_flat(model, theta, x, layout), y)


def _step_gradient(model: nn.Module, layout: ParamLayout, theta: torch.Tensor, images: torch.Tensor,
                   targets: torch.Tensor, index: torch.Tensor, loss_fn: StepLoss, *,
                   create_graph: bool) -> torch.Tensor:
    loss = loss_fn(call_flat(model, theta, images[index], layout), targets[index])
    (grad,) = torch.autograd.grad(loss, theta, create_graph=create_graph)
    return grad


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
    soft = targets.is_floating_point() and targets.requires_grad

    def step_gradient(k: int, theta: torch.Tensor, learned: Sequence[torch.Tensor], graph: bool) -> torch.Tensor:
        y = learned[1] if soft else targets
        return _step_gradient(model, layout, theta, learned[0], y, plan[k], loss_fn, create_graph=graph)

    value, grads, g_lrs = adjoint_unroll(step_gradient, start, lrs, outer, (images, targets) if soft else (images,))
    inputs = (images, targets) if soft else (images,)
    return carry_gradients(value, (*inputs, lrs), (*grads, g_lrs))
