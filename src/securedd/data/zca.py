"""ZCA whitening (as used by trajectory matching on CIFAR).

The transform is fitted on the training split's pixels in [0, 1] (the dataset
normalisation undone), as the MTT reference does with kornia's ``ZCAWhitening(eps=0.1)``:
with ``X`` the (N, D) centred pixel vectors, ``C = XᵀX / (N - 1)`` and ``C = U diag(s) Uᵀ``,

    W = U diag(1 / sqrt(s + regularization)) Uᵀ,     z = (x - mean) W.

A whitened image keeps its (C, H, W) shape. The mean and ``W`` travel in the artifact's
tensors (``zca_mean``, ``zca_matrix``, ``zca_regularization``) so evaluation applies the
very same transform to the test split.

Example:
    >>> import torch
    >>> pixels = torch.rand(200, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> zca = ZCAWhitening.fit(pixels)
    >>> z = zca.transform(pixels)
    >>> z.shape, bool(torch.allclose(zca.inverse(z), pixels, atol=1e-4))
    (torch.Size([200, 1, 4, 4]), True)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from securedd.data.spec import DatasetSpec, RealData
from securedd.errors import ArtifactError, DataError

__all__ = ["ZCA_KEYS", "ZCAWhitening"]

ZCA_KEYS = ("zca_mean", "zca_matrix", "zca_regularization")


def _channel_stats(spec: DatasetSpec, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(spec.mean, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    return mean, std


@dataclass(frozen=True)
class ZCAWhitening:
    """A fitted ZCA transform of (N, C, H, W) pixel images.

    Attributes:
        mean: (D,) mean pixel vector of the fitting set, D = C*H*W.
        matrix: (D, D) symmetric whitening matrix ``W``.
        regularization: the value added to every eigenvalue before the inverse square root.
    """

    mean: torch.Tensor
    matrix: torch.Tensor
    regularization: float = 0.1

    @classmethod
    def fit(cls, pixels: torch.Tensor, *, regularization: float = 0.1) -> ZCAWhitening:
        """Fit on (N, C, H, W) pixels (float64 arithmetic, float32 result; deterministic)."""
        if pixels.dim() != 4 or pixels.shape[0] < 2:
            raise DataError(f"ZCA needs at least 2 images of shape (C, H, W); got a tensor of shape {tuple(pixels.shape)}")
        if regularization <= 0:
            raise DataError(f"ZCA regularization must be > 0; got {regularization}")
        x = pixels.reshape(pixels.shape[0], -1).double()
        mean = x.mean(0)
        centred = x - mean
        cov = centred.T @ centred / (x.shape[0] - 1)  # (D, D)
        s, u = torch.linalg.eigh(cov)
        w = (u * (s.clamp_min(0) + regularization).rsqrt()) @ u.T
        return cls(mean.float(), w.float(), float(regularization))

    @classmethod
    def fit_data(cls, data: RealData, *, regularization: float = 0.1) -> ZCAWhitening:
        """Fit on a split held normalised with its spec (the pixels are recovered first)."""
        return cls.fit(cls.pixels(data.images, data.spec), regularization=regularization)

    @staticmethod
    def pixels(images: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
        """Normalised images -> [0, 1] pixels (no clamping: the map stays linear)."""
        mean, std = _channel_stats(spec, images)
        return images * std + mean

    def transform(self, pixels: torch.Tensor) -> torch.Tensor:
        """Whiten (N, C, H, W) pixels; differentiable."""
        flat = pixels.reshape(pixels.shape[0], -1)
        return ((flat - self.mean.to(flat)) @ self.matrix.to(flat)).reshape(pixels.shape)

    def inverse(self, whitened: torch.Tensor) -> torch.Tensor:
        """Whitened images -> pixels (for pictures of a whitened set)."""
        flat = whitened.reshape(whitened.shape[0], -1)
        solved: torch.Tensor = torch.linalg.solve(self.matrix.to(flat), flat.T)
        pix = solved.T + self.mean.to(flat)
        return pix.reshape(whitened.shape)

    def transform_normalised(self, images: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
        """Whiten images held normalised with ``spec``."""
        return self.transform(self.pixels(images, spec))

    def apply(self, data: RealData) -> RealData:
        """The split whitened (same labels and spec)."""
        self._check_size(data.spec)
        return RealData(self.transform_normalised(data.images, data.spec).contiguous(), data.labels, data.spec)

    def _check_size(self, spec: DatasetSpec) -> None:
        d = spec.channels * spec.height * spec.width
        if self.mean.numel() != d:
            raise DataError(f"this ZCA transform is for {self.mean.numel()}-value images, but '{spec.name}' has {d}")

    def fingerprint(self) -> str:
        """SHA-256 of the transform's values (to check two runs whitened alike)."""
        digest = hashlib.sha256()
        for t in (self.mean, self.matrix, torch.tensor(self.regularization, dtype=torch.float64)):
            digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors stored in an artifact."""
        return {"zca_mean": self.mean.detach().cpu(), "zca_matrix": self.matrix.detach().cpu(),
                "zca_regularization": torch.tensor(self.regularization, dtype=torch.float64)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> ZCAWhitening | None:
        """The transform stored in ``tensors`` (an artifact's extras), or ``None`` if there is none."""
        present = [k for k in ZCA_KEYS if k in tensors]
        if not present:
            return None
        if len(present) != len(ZCA_KEYS):
            missing = ", ".join(k for k in ZCA_KEYS if k not in tensors)
            raise ArtifactError(f"the artifact holds a partial ZCA transform (missing {missing}); re-create it")
        mean, matrix = tensors["zca_mean"], tensors["zca_matrix"]
        if mean.dim() != 1 or tuple(matrix.shape) != (mean.numel(), mean.numel()):
            raise ArtifactError(f"the artifact's ZCA tensors do not fit: mean {tuple(mean.shape)}, matrix {tuple(matrix.shape)}")
        return cls(mean.float(), matrix.float(), float(tensors["zca_regularization"]))
