"""Cutting a batch into pieces: what DC, DM and evaluation share to keep activations in cache."""

from __future__ import annotations

import torch

__all__ = ["has_batch_norm", "num_pieces"]


def has_batch_norm(model: torch.nn.Module) -> bool:
    """Whether ``model``'s outputs depend on the rest of the batch (batch norm in train mode)."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def num_pieces(n: int, size: int) -> int:
    """How many near-equal pieces (``tensor_split``) cut ``n`` rows into at most ``size`` each; 0: one piece."""
    return max(1, -(-n // size)) if size > 0 else 1
