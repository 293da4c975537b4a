"""What a dataset looks like: shape, classes and normalisation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from securedd.errors import DataError

__all__ = ["DatasetSpec", "RealData"]


@dataclass(frozen=True)
class DatasetSpec:
    """Shape, classes and normalisation of a dataset; stored in every artifact.

    ``mean``/``std`` are per channel, for pixels scaled to [0, 1]. Images in securedd are
    always held normalised: ``(pixel - mean) / std``. A spec whose statistics could not
    normalise (one value per channel, finite, std > 0) cannot be built: a DataError.
    """

    name: str
    channels: int
    height: int
    width: int
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"

    def __post_init__(self) -> None:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise DataError(f"dataset spec '{self.name}': mean and std need one value per channel ({self.channels}); "
                            f"got {len(self.mean)} and {len(self.std)}")
        if not all(math.isfinite(m) for m in self.mean) or not all(math.isfinite(s) and s > 0 for s in self.std):
            raise DataError(f"dataset spec '{self.name}': mean must be finite and std finite and > 0; "
                            f"got mean {list(self.mean)}, std {list(self.std)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        out = asdict(self)
        out["class_names"] = list(self.class_names)
        out["mean"] = list(self.mean)
        out["std"] = list(self.std)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DatasetSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(values["name"]),
            channels=int(values["channels"]),
            height=int(values["height"]),
            width=int(values["width"]),
            num_classes=int(values["num_classes"]),
            class_names=tuple(values["class_names"]),
            mean=tuple(float(v) for v in values["mean"]),
            std=tuple(float(v) for v in values["std"]),
            dsa_strategy=str(values.get("dsa_strategy", cls.dsa_strategy)),
        )

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels (N, C, H, W) -> normalised images."""
        mean = torch.tensor(self.mean, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        return (pixels - mean) / std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (N, C, H, W) -> pixels in [0, 1] (clamped)."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (images * std + mean).clamp(0.0, 1.0)


@dataclass(frozen=True)
class RealData:
    """One split of a real dataset, held as tensors.

    Attributes:
        images: (N, C, H, W) float32, normalised with ``spec``.
        labels: (N,) int64 in ``[0, spec.num_classes)``.
        spec: the dataset's spec.
    """

    images: torch.Tensor
    labels: torch.Tensor
    spec: DatasetSpec

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> torch.Tensor:
        """(num_classes,) number of images of each class."""
        return torch.bincount(self.labels, minlength=self.spec.num_classes)

    def to(self, device: str | torch.device) -> RealData:
        """The same data on ``device``."""
        return RealData(self.images.to(device), self.labels.to(device), self.spec)

    def subset(self, index: torch.Tensor) -> RealData:
        """The images at ``index`` (a LongTensor)."""
        return RealData(self.images[index], self.labels[index], self.spec)
