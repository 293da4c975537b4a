"""Unrolled SGD on the synthetic set and the trajectory-matching loss, two ways.

A student starts from an expert snapshot ``θ_0`` and takes ``N`` plain SGD steps on
minibatches of the synthetic images ``X`` with the learnable step size ``α``:

    θ_{k+1} = θ_k − α g_k,    g_k = ∇_θ CE(f(θ_k; A_k(X[b_k])), y[b_k])

(``b_k`` the minibatch, ``A_k`` its DSA draw). The loss is
``L = ‖θ_N − θ*‖² / ‖θ_0 − θ*‖²`` with ``θ*`` the expert ``M`` epochs later.

:func:`unrolled_loss` builds the whole differentiable graph (memory grows with ``N``).
:func:`tesla_loss` (TESLA, Cui et al. 2023) returns the same value and, on backward, the
same gradients with respect to ``X`` and ``α``, with autograd memory that does not grow
with ``N``: the exact adjoint computation of :mod:`securedd.distill.adjoint`, which keeps
only the parameter vectors ``θ_0 … θ_{N−1}`` and rebuilds one step's graph at a time.

Example:
    >>> import torch
    >>> from securedd.models import create_model
    >>> net = create_model("convnet_tiny", (1, 8, 8), 2, generator=torch.Generator().manual_seed(0))
    >>> student = Student(net)
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = torch.randn(4, 1, 8, 8, requires_grad=True); y = torch.tensor([0, 0, 1, 1])
    >>> lr = torch.tensor([0.01], requires_grad=True)
    >>> start = flat_params(net); target = start + 0.01 * torch.randn(start.shape, generator=gen)
    >>> steps = plan_steps(4, 3, 2, gen)
    >>> a = unrolled_loss(student, start, target, x, y, lr, steps)
    >>> b = tesla_loss(student, start, target, x, y, lr, steps)
    >>> bool(torch.allclose(a, b))
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from securedd.data.augment import DSA, AugmentDraw
from securedd.distill.adjoint import adjoint_unroll, carry_gradients
from securedd.models.functional import call_flat, flat_params, param_layout

__all__ = ["SavedTensorMeter", "Step", "Student", "flat_params", "matching_loss", "plan_steps", "tesla_loss",
           "unrolled_loss"]


@dataclass(frozen=True)
class Step:
    """One SGD step of the student: which synthetic images, and their augmentation."""

    index: torch.Tensor  # (b,) positions in the synthetic set
    draw: AugmentDraw | None = None


def plan_steps(n: int, steps: int, batch: int, generator: torch.Generator, dsa: DSA | None = None,
               size: tuple[int, int] | None = None) -> list[Step]:
    """Minibatches (and DSA draws) for ``steps`` student steps over ``n`` synthetic images.

    Each pass over the set is a fresh random permutation cut into chunks of ``batch``.
    """
    plan: list[Step] = []
    chunks: list[torch.Tensor] = []
    for _ in range(steps):
        if not chunks:
            chunks = list(torch.randperm(n, generator=generator, device=generator.device).split(batch))
        index = chunks.pop(0)
        draw = dsa.draw(len(index), size, generator) if dsa is not None and size is not None else None
        plan.append(Step(index, draw))
    return plan


class Student:
    """A model called functionally on a flat parameter vector (the student network)."""

    def __init__(self, model: torch.nn.Module, dsa: DSA | None = None) -> None:
        self.model = model
        self.layout = param_layout(model)
        self.dsa = dsa

    def batch(self, images: torch.Tensor, step: Step) -> torch.Tensor:
        """The step's (augmented) minibatch of ``images``."""
        x = images[step.index.to(images.device)]
        if self.dsa is not None and step.draw is not None:
            x = self.dsa.apply(x, step.draw)
        return x

    def loss(self, flat: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, step: Step) -> torch.Tensor:
        """Cross-entropy of the student with parameters ``flat`` on the step's minibatch."""
        logits = call_flat(self.model, flat, self.batch(images, step), self.layout)
        return F.cross_entropy(logits, labels[step.index.to(labels.device)])


def matching_loss(final: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``‖final − target‖² / ‖start − target‖²``."""
    return ((final - target) ** 2).sum() / ((start - target) ** 2).sum()


def unrolled_loss(student: Student, start: torch.Tensor, target: torch.Tensor, images: torch.Tensor,
                  labels: torch.Tensor, lr: torch.Tensor, steps: list[Step]) -> torch.Tensor:
    """The matching loss through a fully differentiable unroll (memory grows with ``len(steps)``).

    ``start``/``target`` are (P,) expert snapshots, ``images`` (n, C, H, W), ``lr`` (1,).
    """
    theta = start.detach().clone().requires_grad_(True)
    for step in steps:
        (grad,) = torch.autograd.grad(student.loss(theta, images, labels, step), theta, create_graph=True)
        theta = theta - lr * grad
    return matching_loss(theta, start, target)


def tesla_loss(student: Student, start: torch.Tensor, target: torch.Tensor, images: torch.Tensor,
               labels: torch.Tensor, lr: torch.Tensor, steps: list[Step]) -> torch.Tensor:
    """The matching loss of :func:`unrolled_loss` with the same gradients, in constant autograd memory.

    The gradients are computed here (see the module docstring); the returned scalar carries
    them to ``images`` and ``lr`` when ``backward()`` is called on it.
    """
    denom = ((start.detach() - target) ** 2).sum()

    def step_gradient(k: int, theta: torch.Tensor, learned: Sequence[torch.Tensor], graph: bool) -> torch.Tensor:
        (grad,) = torch.autograd.grad(student.loss(theta, learned[0], labels, steps[k]), theta, create_graph=graph)
        return grad

    def outer(final: torch.Tensor) -> torch.Tensor:
        return ((final - target) ** 2).sum() / denom

    alphas = lr.detach().reshape(1).expand(len(steps))
    value, (g_images,), g_alphas = adjoint_unroll(step_gradient, start, alphas, outer, (images,))
    return carry_gradients(value, (images, lr), (g_images, g_alphas.sum().reshape(lr.shape)))


class _Held:
    __slots__ = ("meter", "nbytes", "tensor")

    def __init__(self, meter: SavedTensorMeter, tensor: torch.Tensor) -> None:
        self.meter, self.tensor = meter, tensor
        self.nbytes = tensor.numel() * tensor.element_size()

    def __del__(self) -> None:
        self.meter.current -= self.nbytes


class SavedTensorMeter:
    """Counts the bytes autograd holds for backward while active: now, at peak, and in all.

    A deterministic, device-independent memory measure (tensors sharing storage are counted
    once per save). The held copies are detached, so no reference cycle delays their release.

    Example:
        >>> x = torch.randn(1000, requires_grad=True)
        >>> with SavedTensorMeter() as meter:
        ...     y = (x.exp() * x).sum()
        >>> meter.peak >= 2 * 4000, meter.current > 0
        (True, True)
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.total = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, tensor: torch.Tensor) -> _Held:
        held = _Held(self, tensor.detach())
        self.current += held.nbytes
        self.total += held.nbytes
        self.peak = max(self.peak, self.current)
        return held

    @staticmethod
    def _unpack(held: _Held) -> torch.Tensor:
        return held.tensor

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)
