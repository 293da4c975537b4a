"""Functional views of a model for unrolled methods: parameters as a dict or one flat vector,
stateless calls.

Example:
    >>> import torch
    >>> from securedd.models import create_model
    >>> net = create_model("convnet_tiny", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0))
    >>> flat = flat_params(net)  # (P,) in named_parameters() order
    >>> layout = param_layout(net)
    >>> call_flat(net, flat, torch.zeros(2, 1, 8, 8), layout).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["ParamLayout", "buffers_of", "call", "call_flat", "flat_params", "params_of", "param_layout",
           "unflatten_params"]

ParamLayout = list[tuple[str, torch.Size]]


def params_of(model: nn.Module, *, detach: bool = True) -> dict[str, torch.Tensor]:
    """The model's parameters by name (detached copies unless ``detach=False``)."""
    return {k: (v.detach().clone() if detach else v) for k, v in model.named_parameters()}


def buffers_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's buffers by name (e.g. batch-norm running statistics)."""
    return dict(model.named_buffers())


def call(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` with ``params`` (and its own buffers) without touching its weights."""
    out: torch.Tensor = functional_call(model, {**buffers_of(model), **params}, (x,))
    return out


def param_layout(model: nn.Module) -> ParamLayout:
    """``[(name, shape), ...]`` of the trainable parameters, in ``named_parameters()`` order."""
    return [(k, v.shape) for k, v in model.named_parameters() if v.requires_grad]


def flat_params(model: nn.Module) -> torch.Tensor:
    """(P,) detached copy of every trainable parameter, concatenated in ``param_layout`` order."""
    return torch.cat([v.detach().reshape(-1) for v in model.parameters() if v.requires_grad])


def unflatten_params(flat: torch.Tensor, layout: ParamLayout) -> dict[str, torch.Tensor]:
    """Views of ``flat`` (P,) shaped as the named parameters of ``layout`` (differentiable)."""
    sizes = [s.numel() for _, s in layout]
    if flat.numel() != sum(sizes):
        raise ValueError(f"a flat vector of {flat.numel()} values does not fit a layout of {sum(sizes)} parameters")
    return {name: part.view(shape) for (name, shape), part in zip(layout, flat.split(sizes), strict=True)}


def call_flat(model: nn.Module, flat: torch.Tensor, x: torch.Tensor, layout: ParamLayout | None = None) -> torch.Tensor:
    """Run ``model`` on ``x`` with its parameters taken from the flat vector ``flat`` (P,)."""
    return call(model, unflatten_params(flat, layout if layout is not None else param_layout(model)), x)
