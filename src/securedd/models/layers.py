"""Building blocks shared by the model zoo: norm, activation and pooling by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from securedd.errors import ConfigError, did_you_mean

__all__ = ["ACTIVATIONS", "NORMS", "POOLS", "first_padding", "make_act", "make_norm", "make_pool"]

NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
ACTIVATIONS = ("relu", "sigmoid", "leakyrelu", "swish", "tanh", "gelu")
POOLS = ("avgpool", "maxpool", "none")


def _check(kind: str, value: str, valid: tuple[str, ...]) -> str:
    key = value.lower()
    if key not in valid:
        raise ConfigError(f"unknown {kind} '{value}'.{did_you_mean(value, valid)} Valid {kind}s: {', '.join(valid)}.")
    return key


def make_norm(name: str, channels: int, size: tuple[int, int]) -> nn.Module:
    """A normalisation layer; ``size`` (H, W) is the feature-map size (layer norm needs it).

    ``instancenorm`` is ``GroupNorm(C, C)`` with affine parameters, as in the reference ConvNet.
    """
    key = _check("norm", name, NORMS)
    if key == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if key == "batchnorm":
        return nn.BatchNorm2d(channels)
    if key == "layernorm":
        return nn.LayerNorm([channels, size[0], size[1]], elementwise_affine=True)
    if key == "groupnorm":
        return nn.GroupNorm(4 if channels % 4 == 0 else 1, channels, affine=True)
    return nn.Identity()


def make_act(name: str) -> nn.Module:
    """An activation by name (``swish`` is x * sigmoid(x))."""
    key = _check("activation", name, ACTIVATIONS)
    builders: dict[str, Callable[[], nn.Module]] = {
        "relu": lambda: nn.ReLU(inplace=True),  # as the reference; saves one tensor per block
        "sigmoid": nn.Sigmoid,
        "leakyrelu": lambda: nn.LeakyReLU(0.01),
        "swish": nn.SiLU,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
    }
    return builders[key]()


def make_pool(name: str) -> nn.Module | None:
    """A 2x2 stride-2 pooling layer, or ``None`` for ``"none"``."""
    key = _check("pooling", name, POOLS)
    if key == "avgpool":
        return nn.AvgPool2d(2, 2)
    if key == "maxpool":
        return nn.MaxPool2d(2, 2)
    return None


def first_padding(size: tuple[int, int], default: int, grey28: int) -> int:
    """Padding of a first conv: ``grey28`` for 28x28 inputs (the field's rule), else ``default``."""
    return grey28 if tuple(size) == (28, 28) else default


def flat_features(features: nn.Module, in_channels: int, size: tuple[int, int]) -> int:
    """Number of flattened features ``features`` gives for one (C, H, W) input.

    Runs a dummy batch of two in eval mode, so batch-norm statistics are not touched.
    """
    was_training = features.training
    features.eval()
    with torch.no_grad():
        n = features(torch.zeros(2, in_channels, *size))[0].numel()
    features.train(was_training)
    return int(n)


class FeatureClassifier(nn.Module):
    """A ``features`` stack, flattened, then one linear ``classifier`` (ConvNet, AlexNet, VGG).

    Subclasses build ``self.features`` and call :meth:`_add_classifier`.
    """

    features: nn.Module

    def _add_classifier(self, feature_dim: int, num_classes: int) -> None:
        self.feature_dim = feature_dim
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, feature_dim) flattened features."""
        features: torch.Tensor = self.features(x)
        return features.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, num_classes) logits."""
        logits: torch.Tensor = self.classifier(self.embed(x))
        return logits
