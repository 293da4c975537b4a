"""CutMix (Yun et al. 2019): paste a box from a partner image, mix the labels by area.

IDC (Kim et al. 2022) trains with CutMix both the networks it matches gradients on and
the fresh models of its evaluation. With probability ``prob`` per batch, a box is cut
from a randomly permuted copy of the batch and pasted into every image; the box's side is
``sqrt(1 - lam)`` of the image's, ``lam ~ Beta(beta, beta)``, and its centre is uniform
over the image (the box is clipped at the border). The loss mixes the two labels by the
area each image really keeps: ``ratio * loss(y) + (1 - ratio) * loss(y_partner)``.

Every draw comes from the ``torch.Generator`` passed in.

Example:
    >>> import torch
    >>> from securedd.rng import make_generator
    >>> mix = CutMix(prob=1.0)
    >>> batch = mix(torch.randn(8, 3, 32, 32), torch.arange(8), make_generator(0, "cutmix"))
    >>> batch.images.shape, 0.0 <= batch.ratio <= 1.0
    (torch.Size([8, 3, 32, 32]), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from securedd.errors import ConfigError

__all__ = ["CutMix", "MixedBatch"]


@dataclass(frozen=True)
class MixedBatch:
    """A batch after CutMix.

    Attributes:
        images: (N, C, H, W) images with the partner's box pasted in (or unchanged).
        labels: the labels of the base images, (N,) or (N, K).
        partner_labels: the labels of the images the box came from.
        ratio: the fraction of each image that is still its own, ``1 - box area / image area``.
        box: (top, left, bottom, right) of the pasted box; empty when no mixing happened.
    """

    images: torch.Tensor
    labels: torch.Tensor
    partner_labels: torch.Tensor
    ratio: float
    box: tuple[int, int, int, int] = (0, 0, 0, 0)

    def loss(self, logits: torch.Tensor, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``ratio * loss_fn(logits, labels) + (1 - ratio) * loss_fn(logits, partner_labels)``."""
        if self.ratio == 1.0:
            return loss_fn(logits, self.labels)
        return self.ratio * loss_fn(logits, self.labels) + (1.0 - self.ratio) * loss_fn(logits, self.partner_labels)


def _beta(a: float, generator: torch.Generator) -> float:
    """One Beta(a, a) draw, seeded from ``generator`` (torch has no seeded Beta sampler)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return float(np.random.default_rng(seed).beta(a, a))


class CutMix:
    """CutMix applied per batch.

    Args:
        prob: probability that a batch is mixed (IDC: 0.5 on MNIST-size and CIFAR-size
            data, 1.0 on ImageNet).
        beta: parameter of the Beta(beta, beta) draw of the kept area (IDC: 1.0, uniform).
    """

    def __init__(self, prob: float = 0.5, beta: float = 1.0) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"CutMix probability must be in [0, 1]; got {prob}")
        if beta <= 0:
            raise ConfigError(f"CutMix beta must be positive; got {beta}")
        self.prob = prob
        self.beta = beta

    def box(self, lam: float, height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of a box of about ``1 - lam`` of the area, clipped to the image."""
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(height * cut), int(width * cut)
        dev = generator.device
        cy = int(torch.randint(0, height, (1,), generator=generator, device=dev))
        cx = int(torch.randint(0, width, (1,), generator=generator, device=dev))
        top, bottom = min(max(cy - ch // 2, 0), height), min(max(cy + ch // 2, 0), height)
        left, right = min(max(cx - cw // 2, 0), width), min(max(cx + cw // 2, 0), width)
        return top, left, bottom, right

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> MixedBatch:
        """Mix ``images`` (N, C, H, W) with a permutation of themselves, with probability ``prob``."""
        coin = float(torch.rand((), generator=generator, device=generator.device))
        if self.prob == 0.0 or coin >= self.prob:
            return MixedBatch(images, labels, labels, 1.0)
        n, _, h, w = images.shape
        lam = _beta(self.beta, generator)
        partner = torch.randperm(n, generator=generator, device=generator.device).to(images.device)
        top, left, bottom, right = self.box(lam, h, w, generator)
        mixed = images.clone()
        mixed[:, :, top:bottom, left:right] = images[partner, :, top:bottom, left:right]
        ratio = 1.0 - (bottom - top) * (right - left) / (h * w)
        return MixedBatch(mixed, labels, labels[partner.to(labels.device)], ratio, (top, left, bottom, right))
