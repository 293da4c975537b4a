"""Scoring a trained model on real test data: accuracy and loss, overall and per class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from securedd.data.spec import RealData
from securedd.precision import autocast
from securedd.profiling import phase
from securedd.training.compiled import CompiledForward

__all__ = ["ModelScore", "inference_batch", "score_model"]


@dataclass(frozen=True)
class ModelScore:
    """One trained model's result on the test split."""

    accuracy: float  # %
    loss: float
    per_class_accuracy: torch.Tensor  # (K,) %
    per_class_loss: torch.Tensor  # (K,)
    seconds: float = 0.0


def inference_batch(images: torch.Tensor) -> int:
    """The batch size for forward passes without gradients over ``images``.

    64 on a CPU, where activations that stay in cache make ResNet-18 on MNIST about twice
    as fast as in batches of 2048 (ConvNet-3 likewise; compiled, 64 and 256 are within 3%,
    ``benchmarks/compile_gain.py``); 2048 on an accelerator.
    """
    return 64 if images.device.type == "cpu" else 2048


@torch.no_grad()
def score_model(model: torch.nn.Module, test: RealData, batch_size: int | None = None, *,
                compile: bool = False, precision: str = "fp32") -> ModelScore:
    """Accuracy and loss on ``test``, overall and per class (batches of :func:`inference_batch` by default).

    ``compile`` runs the forward passes through ``torch.compile`` (the same scores up to float rounding);
    ``precision`` ``bf16`` runs them under bfloat16 autocast (:mod:`securedd.precision`).
    """
    model.eval()
    batch_size = batch_size or inference_batch(test.images)
    forward: Callable[[torch.Tensor], torch.Tensor] = CompiledForward(model) if compile else model
    k = test.spec.num_classes
    losses, correct = [], []
    with phase("scoring"):
        for start in range(0, len(test), batch_size):
            with autocast(precision, test.images.device.type):
                x = test.images[start : start + batch_size]
                logits = forward(x).to(x.dtype)
            y = test.labels[start : start + batch_size]
            losses.append(F.cross_entropy(logits, y, reduction="none"))
            correct.append((logits.argmax(1) == y).double())
    loss, hit = torch.cat(losses).double().cpu(), torch.cat(correct).cpu()
    labels = test.labels.cpu()
    counts = torch.bincount(labels, minlength=k).double().clamp_min(1)
    per_acc = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, hit) / counts * 100
    per_loss = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, loss) / counts
    return ModelScore(float(hit.mean() * 100), float(loss.mean()), per_acc, per_loss)
