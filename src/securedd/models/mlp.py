"""A multi-layer perceptron on flattened pixels (the cross-architecture baseline)."""

from __future__ import annotations

import torch
from torch import nn

from securedd.models.layers import make_act

__all__ = ["MLP"]


class MLP(nn.Module):
    """Flatten -> Linear(hidden) -> act -> Linear(hidden) -> act -> Linear(classes)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int] = (32, 32),
        *,
        hidden: int = 128,
        act: str = "relu",
    ) -> None:
        super().__init__()
        in_dim = in_channels * image_size[0] * image_size[1]
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), make_act(act), nn.Linear(hidden, hidden), make_act(act))
        self.classifier = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.body(x.flatten(1))
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.embed(x))
        return logits
