"""ResNet18 (CIFAR-style stem: one 3x3 conv, no max-pool) with instance- or batch-norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from securedd.models.layers import first_padding, make_norm

__all__ = ["BasicBlock", "ResNet"]


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut (1x1 conv + norm when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, size: tuple[int, int]) -> None:
        super().__init__()
        out_size = ((size[0] + 1) // stride, (size[1] + 1) // stride) if stride > 1 else size
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, c_out, out_size)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = make_norm(norm, c_out, out_size)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), make_norm(norm, c_out, out_size)
            )
        self.out_size = out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with BasicBlocks (``blocks=(2, 2, 2, 2)`` is ResNet18), global average pooling."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int] = (32, 32),
        *,
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        norm: str = "instancenorm",
    ) -> None:
        super().__init__()
        pad = first_padding(image_size, 1, 3)
        size = (image_size[0] + 2 * pad - 2, image_size[1] + 2 * pad - 2)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, padding=pad, bias=False)
        self.bn1 = make_norm(norm, 64, size)
        layers: list[nn.Module] = []
        channels = 64
        for stage, n in enumerate(blocks):
            width = 64 * 2**stage
            for i in range(n):
                block = BasicBlock(channels, width, 2 if (i == 0 and stage > 0) else 1, norm, size)
                size, channels = block.out_size, width
                layers.append(block)
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 512) globally pooled features."""
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.embed(x))
        return logits
