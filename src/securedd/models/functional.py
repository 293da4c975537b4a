"""Functional views of a model for unrolled methods: parameters as a dict, stateless calls."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["buffers_of", "call", "params_of"]


def params_of(model: nn.Module, *, detach: bool = True) -> dict[str, torch.Tensor]:
    """The model's parameters by name (detached copies unless ``detach=False``)."""
    return {k: (v.detach().clone() if detach else v) for k, v in model.named_parameters()}


def buffers_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's buffers by name (e.g. batch-norm running statistics)."""
    return dict(model.named_buffers())


def call(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` with ``params`` (and its own buffers) without touching its weights."""
    return functional_call(model, {**buffers_of(model), **params}, (x,))
