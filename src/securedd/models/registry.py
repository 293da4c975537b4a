"""Build models by name: ``create_model("convnet", (1, 28, 28), 10, width=64)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from securedd.errors import ConfigError, MismatchError, did_you_mean
from securedd.models.alexnet import AlexNet
from securedd.models.convnet import ConvNet
from securedd.models.lenet import LeNet
from securedd.models.mlp import MLP
from securedd.models.resnet import ResNet
from securedd.models.vgg import VGG
from securedd.registry import Registry

__all__ = ["MODELS", "create_model", "list_models", "num_parameters"]

Builder = Callable[..., nn.Module]
MODELS: Registry[Builder] = Registry("model")


def _variant(cls: type[nn.Module], help: str, **fixed: Any) -> Builder:
    def build(in_channels: int, num_classes: int, image_size: tuple[int, int], **kwargs: Any) -> nn.Module:
        return cls(in_channels, num_classes, image_size, **{**fixed, **kwargs})

    build.__doc__ = help
    build.model_class = cls  # type: ignore[attr-defined]
    return build


_ZOO: dict[str, tuple[type[nn.Module], str, dict[str, Any]]] = {
    "convnet": (ConvNet, "ConvNet-3 (width 128, instance norm, ReLU, avg-pool): the standard backbone", {}),
    "convnet_bn": (ConvNet, "ConvNet-3 with batch norm", {"norm": "batchnorm"}),
    "convnet_ln": (ConvNet, "ConvNet-3 with layer norm", {"norm": "layernorm"}),
    "convnet_nonorm": (ConvNet, "ConvNet-3 without normalisation", {"norm": "none"}),
    "convnet_attack": (ConvNet, "ConvNet-3, sigmoid, no pooling (the leakage experiments' variant)",
                       {"act": "sigmoid", "pool": "none"}),
    "convnet_tiny": (ConvNet, "ConvNet-2 of width 16: a tiny model for tests", {"width": 16, "depth": 2}),
    "lenet": (LeNet, "LeNet-5 (ReLU)", {}),
    "alexnet": (AlexNet, "AlexNet (no norm)", {}),
    "alexnet_bn": (AlexNet, "AlexNet with batch norm", {"norm": "batchnorm"}),
    "vgg11": (VGG, "VGG11 with instance norm", {"config": "vgg11", "norm": "instancenorm"}),
    "vgg11_bn": (VGG, "VGG11 with batch norm", {"config": "vgg11", "norm": "batchnorm"}),
    "vgg16": (VGG, "VGG16 with instance norm", {"config": "vgg16", "norm": "instancenorm"}),
    "resnet18": (ResNet, "ResNet18 with instance norm", {"norm": "instancenorm"}),
    "resnet18_bn": (ResNet, "ResNet18 with batch norm", {"norm": "batchnorm"}),
    "mlp": (MLP, "MLP with two hidden layers of 128", {}),
}
for _name, (_cls, _help, _fixed) in _ZOO.items():
    MODELS.register(_name, help=_help)(_variant(_cls, _help, **_fixed))


def list_models() -> list[str]:
    """Registered model names."""
    return MODELS.names()


def create_model(
    name: str,
    in_shape: tuple[int, int, int] | torch.Size,
    num_classes: int,
    *,
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name`` for images of shape ``(C, H, W)`` and ``num_classes`` outputs.

    With ``generator``, the weights are initialised from it (PyTorch's default schemes,
    drawn from that generator), so the same generator state gives the same network.

    Raises:
        UnknownNameError: ``name`` is not registered.
        MismatchError: the input is smaller than 8x8.
        ConfigError: an unknown keyword argument.
    """
    builder = MODELS.get(name)
    c, h, w = (int(v) for v in in_shape)
    if h < 8 or w < 8:
        raise MismatchError(f"model '{name}' needs images of at least 8x8; got {h}x{w}")
    cls = builder.model_class  # type: ignore[attr-defined]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "in_channels", "num_classes", "image_size")]
    for key in kwargs:
        if key not in valid:
            raise ConfigError(
                f"model '{name}' has no option '{key}'.{did_you_mean(key, valid)} Options: {', '.join(valid)}."
            )
    if generator is None:
        return builder(c, num_classes, (h, w), **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        return builder(c, num_classes, (h, w), **kwargs)


def num_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
