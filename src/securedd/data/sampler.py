"""Class-balanced sampling of real images, driven by an explicit generator."""

from __future__ import annotations

import torch

from securedd.data.spec import RealData
from securedd.errors import MismatchError
from securedd.profiling import phase

__all__ = ["ClassBalancedSampler", "check_ipc"]


def check_ipc(data: RealData, ipc: int) -> None:
    """Raise :class:`MismatchError` unless every class has at least ``ipc`` images."""
    if ipc < 1:
        raise MismatchError(f"images per class must be at least 1; got {ipc}")
    counts = data.class_counts()
    smallest = int(counts.min())
    if ipc > smallest:
        c = int(counts.argmin())
        raise MismatchError(
            f"IPC {ipc} is larger than the smallest class of '{data.spec.name}' "
            f"(class {c} '{data.spec.class_names[c]}' has {smallest} images); use --ipc {smallest} or less"
        )


class ClassBalancedSampler:
    """Draw real images class by class.

    Args:
        data: the real training data (held once as a tensor).
        generator: the explicit source of randomness.

    Example:
        >>> from securedd.data import load_dataset
        >>> from securedd.rng import make_generator
        >>> s = ClassBalancedSampler(load_dataset("digits"), make_generator(0, "sampler"))
        >>> images, labels = s.balanced(5)
        >>> images.shape[0], labels.bincount().tolist()
        (50, [5, 5, 5, 5, 5, 5, 5, 5, 5, 5])
    """

    def __init__(self, data: RealData, generator: torch.Generator) -> None:
        self.data = data
        self.generator = generator
        order = torch.argsort(data.labels, stable=True)
        counts = data.class_counts().tolist()
        self._by_class = list(torch.split(order, counts))

    @property
    def num_classes(self) -> int:
        return self.data.spec.num_classes

    def class_indices(self, c: int) -> torch.Tensor:
        """All dataset indices of class ``c`` (ascending)."""
        return self._by_class[c]

    def indices(self, c: int, n: int) -> torch.Tensor:
        """``n`` random indices of class ``c``, without replacement (all of them, shuffled, if fewer)."""
        pool = self._by_class[c]
        if len(pool) == 0:
            raise MismatchError(f"class {c} of '{self.data.spec.name}' has no images")
        perm = torch.randperm(len(pool), generator=self.generator)[:n]
        return pool[perm]

    def sample(self, c: int, n: int) -> torch.Tensor:
        """(n, C, H, W) random real images of class ``c``."""
        with phase("data"):
            return self.data.images[self.indices(c, n).to(self.data.images.device)]

    def balanced(self, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` random images of every class: images (K*n, C, H, W), labels (K*n,)."""
        index = torch.cat([self.indices(c, per_class) for c in range(self.num_classes)])
        index = index.to(self.data.images.device)
        return self.data.images[index], self.data.labels[index]
