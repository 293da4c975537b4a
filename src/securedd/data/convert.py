"""Images of one dataset as images of another: channels, size and normalisation (DD's domain
adaptation, SecDD's unrelated-dataset mode).

Example:
    >>> import torch
    >>> from securedd.data import dataset_spec
    >>> digits = dataset_spec("digits")
    >>> convert_images(torch.zeros(2, 1, 8, 8), digits, dataset_spec("cifar10")).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from securedd.data.spec import DatasetSpec
from securedd.errors import ConfigError

__all__ = ["convert_images"]


def convert_images(images: torch.Tensor, source: DatasetSpec, target: DatasetSpec) -> torch.Tensor:
    """Normalised ``source`` images (N, C, H, W) as normalised ``target`` images.

    Grey becomes RGB by repetition and RGB grey by the channel mean; sizes change by
    bilinear resampling; pixels are re-normalised with the target's statistics.
    """
    pixels = source.denormalize(images.float())
    channels = target.shape[0]
    if pixels.shape[1] != channels:
        if channels not in (1, 3) or pixels.shape[1] not in (1, 3):
            raise ConfigError(f"cannot turn {pixels.shape[1]}-channel images into {channels}-channel ones")
        pixels = pixels.mean(1, keepdim=True).expand(-1, channels, -1, -1)
    if tuple(pixels.shape[-2:]) != target.shape[1:]:
        pixels = F.interpolate(pixels, size=target.shape[1:], mode="bilinear", align_corners=False).clamp(0, 1)
    return target.normalize(pixels.contiguous())
