"""Fairness across classes (REFERENCE section 5): lower variance is fairer."""

from __future__ import annotations

import torch

__all__ = ["class_variance", "normalized_per_class"]


def class_variance(per_class: torch.Tensor) -> float:
    """Population variance across classes of a per-class metric (accuracy in % or loss)."""
    return float(per_class.double().var(unbiased=False))


def normalized_per_class(per_class: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-class accuracy divided by a reference model's (e.g. the full-data model's)."""
    return per_class.double() / reference.double().clamp_min(1e-12)
