"""LeNet-5 style network (the DD paper's MNIST model, and a cross-architecture test)."""

from __future__ import annotations

import torch
from torch import nn

from securedd.models.layers import flat_features, make_act

__all__ = ["LeNet"]


class LeNet(nn.Module):
    """conv5(6) -> act -> maxpool -> conv5(16) -> act -> maxpool -> fc120 -> fc84 -> fc.

    28x28 grey-scale inputs pad the first conv by 2 (the classic 32x32 geometry). Inputs
    smaller than 28 pad both convs by 2 so the feature map never vanishes.
    """

    def __init__(
        self, in_channels: int, num_classes: int, image_size: tuple[int, int] = (32, 32), *, act: str = "relu"
    ) -> None:
        super().__init__()
        small = min(image_size) < 28
        pad1 = 2 if (tuple(image_size) == (28, 28) or small) else 0
        pad2 = 2 if small else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad1), make_act(act), nn.MaxPool2d(2, 2),
            nn.Conv2d(6, 16, 5, padding=pad2), make_act(act), nn.MaxPool2d(2, 2),
        )
        self.flat_dim = flat_features(self.features, in_channels, image_size)
        self.fc = nn.Sequential(nn.Linear(self.flat_dim, 120), make_act(act), nn.Linear(120, 84), make_act(act))
        self.classifier = nn.Linear(84, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 84) penultimate features."""
        features: torch.Tensor = self.fc(self.features(x).flatten(1))
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.embed(x))
        return logits
