"""The synthetic set being learned, and how it starts."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from securedd.data.sampler import ClassBalancedSampler
from securedd.data.spec import DatasetSpec
from securedd.errors import ConfigError

__all__ = ["INITS", "SyntheticSet", "class_labels", "init_images", "learnable_set"]

INITS = ("real", "noise")


@dataclass
class SyntheticSet:
    """Learnable state of a distillation run.

    Attributes:
        images: (N, C, H, W) normalised images, ``requires_grad`` when learned.
        labels: (N,) int64 hard labels, or (N, K) float targets.
        lrs: learned learning rates (or ``None``).
        extras: further method tensors saved in the artifact.
    """

    images: torch.Tensor
    labels: torch.Tensor
    lrs: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor by name (for checkpoints)."""
        out = {"images": self.images, "labels": self.labels, **self.extras}
        if self.lrs is not None:
            out["lrs"] = self.lrs
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore values in place (keeps ``requires_grad`` and optimiser references valid)."""
        with torch.no_grad():
            for name, t in self.tensors().items():
                t.copy_(tensors[name].to(t.device))


def class_labels(num_classes: int, ipc: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """(K*ipc,) labels ``[0]*ipc + [1]*ipc + ...``: the class-major layout of every synthetic set."""
    return torch.arange(num_classes, device=device).repeat_interleave(ipc)


def init_images(
    mode: str,
    spec: DatasetSpec,
    ipc: int,
    sampler: ClassBalancedSampler,
    generator: torch.Generator,
) -> torch.Tensor:
    """(K*ipc, C, H, W) starting images, class-major: random real images or N(0, 1) noise."""
    if mode == "real":
        return torch.cat([sampler.sample(c, ipc) for c in range(spec.num_classes)]).clone()
    if mode == "noise":
        shape = (spec.num_classes * ipc, *spec.shape)
        return torch.randn(shape, generator=generator, device=generator.device)
    raise ConfigError(f"unknown image init '{mode}'; valid: {', '.join(INITS)}")


def learnable_set(init: str, spec: DatasetSpec, ipc: int, sampler: ClassBalancedSampler,
                  generator: torch.Generator) -> SyntheticSet:
    """A class-major synthetic set whose images are learned (``requires_grad``), hard labels."""
    if init not in INITS:
        raise ConfigError(f"method.init must be one of {', '.join(INITS)}; got '{init}'")
    images = init_images(init, spec, ipc, sampler, generator).detach().clone().requires_grad_(True)
    return SyntheticSet(images, class_labels(spec.num_classes, ipc, images.device))
