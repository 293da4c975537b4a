"""The training loops: SGD epochs over a set (:func:`train_model`) and a learned GD schedule (:func:`replay_steps`).

Example:
    >>> import torch
    >>> from securedd.models import create_model
    >>> model = create_model("mlp", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0))
    >>> seen = []
    >>> _ = train_model(model, torch.randn(20, 1, 8, 8), torch.arange(20) % 10, TrainSettings(epochs=2),
    ...                 torch.Generator().manual_seed(0), on_epoch=lambda epoch, m: seen.append(epoch))
    >>> seen
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from securedd.data.augment import DSA
from securedd.data.mix import CutMix
from securedd.data.steps import step_plan
from securedd.errors import MismatchError
from securedd.models.pieces import has_batch_norm, num_pieces
from securedd.precision import autocast
from securedd.profiling import phase
from securedd.training.compiled import CompiledForward, resolve_compile
from securedd.training.settings import TrainSettings

__all__ = ["EpochHook", "replay_steps", "soft_label_loss", "train_model"]

EpochHook = Callable[[int, torch.nn.Module], None]
"""Called as ``hook(epoch, model)`` after each finished epoch (``epoch`` counts from 0)."""


def soft_label_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against hard labels (N,) or against target distributions (N, K)."""
    if targets.is_floating_point():  # soft labels: target distributions
        return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    return F.cross_entropy(logits, targets)


def train_model(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: TrainSettings,
    generator: torch.Generator,
    *,
    on_epoch: EpochHook | None = None,
) -> torch.nn.Module:
    """Train ``model`` in place on ``images`` (N, C, H, W) and ``labels`` (hard or soft).

    Each epoch shuffles the set with ``generator``, which also draws the augmentation and
    CutMix; ``on_epoch(epoch, model)`` runs after every epoch (e.g. to record parameters).
    With ``settings.compile`` (or, for ``None``, when :func:`~securedd.training.compiled.worth_compiling`
    says so) the forward and backward passes run compiled; ``settings.precision`` ``bf16`` runs
    the forward pass under bfloat16 autocast (the loss in fp32).
    """
    opt: torch.optim.Optimizer = (
        torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        if settings.optimizer == "adam" else
        torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                        weight_decay=settings.weight_decay))
    sched = (torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, settings.epochs // 2)], gamma=0.1)
             if settings.lr_drop else None)
    dsa = DSA(settings.dsa_strategy) if settings.dsa_strategy else None
    cutmix = CutMix(settings.cutmix_prob, settings.cutmix_beta) if settings.cutmix_prob > 0 else None
    n = images.shape[0]
    # bf16 trains whole batches: in short trials on a CPU, compiled bf16 epochs in pieces of 16
    # (fp32's best) were slower than whole ones (benchmarks/eval_speed.py times the whole-batch rule)
    whole = has_batch_norm(model) or cutmix is not None or settings.precision == "bf16"
    chunk = 0 if whole else settings.chunk
    compiled: Callable[[torch.Tensor], torch.Tensor] = (
        CompiledForward(model) if resolve_compile(settings.compile, images, settings.epochs) else model)
    cast = autocast(settings.precision, images.device.type)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with cast:
            return compiled(x).to(x.dtype)  # bf16 logits back to the images' precision

    model.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(n, generator=generator, device=generator.device).to(images.device)
        for start in range(0, n, settings.batch_size):
            with phase("data"):
                index = order[start : start + settings.batch_size]
                x, y = images[index], labels[index]
            if dsa is not None:
                x = dsa(x, generator)  # its own "augmentation" phase
            opt.zero_grad(set_to_none=True)
            if cutmix is not None:
                with phase("augmentation"):
                    mixed = cutmix(x, y, generator)
                with phase("forward"):
                    loss = mixed.loss(forward(mixed.images), soft_label_loss)
                with phase("backward"):
                    loss.backward()
            else:
                pieces = num_pieces(len(x), chunk)
                for xs, ys in zip(x.tensor_split(pieces), y.tensor_split(pieces), strict=True):
                    with phase("forward"):
                        loss = soft_label_loss(forward(xs), ys) * (len(xs) / len(x))
                    with phase("backward"):
                        loss.backward()
            with phase("optimiser"):
                opt.step()
        if sched is not None:
            sched.step()
        if on_epoch is not None:
            on_epoch(epoch, model)
    return model


def replay_steps(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    lrs: torch.Tensor,
    steps: int,
    num_classes: int,
) -> torch.nn.Module:
    """Apply a learned per-step schedule (DD) to ``model`` in place.

    ``images`` are class-major; GD step ``i`` takes block ``i % steps`` of every class's
    images (:func:`~securedd.data.steps.step_plan`) with learning rate ``lrs[i]``, so
    ``len(lrs) / steps`` epochs run with the images tied across them.
    """
    n = images.shape[0]
    if n % num_classes or (n // num_classes) % steps or len(lrs) % steps:
        raise MismatchError(f"{n} images of {num_classes} classes and {len(lrs)} learning rates do not make "
                            f"{steps} equal steps per epoch")
    plan = step_plan(num_classes, n // num_classes, steps, len(lrs) // steps, device=images.device)
    model.train()
    for index, lr in zip(plan, lrs.tolist(), strict=True):
        loss = soft_label_loss(model(images[index]), labels[index])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads, strict=True):
                p.sub_(lr * g)
    return model
