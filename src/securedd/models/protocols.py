"""Structural types for code that uses a network's parts: its penultimate features and its linear head.

Every network of the zoo has both: :class:`~securedd.models.layers.FeatureClassifier`
(ConvNet, AlexNet, VGG), MLP, LeNet and ResNet.

Example:
    >>> import torch
    >>> from securedd.models import create_model
    >>> net = create_model("convnet_tiny", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0))
    >>> isinstance(net, Embedder), has_linear_head(net), has_linear_head(torch.nn.Linear(2, 2))
    (True, True, False)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from typing_extensions import TypeIs

__all__ = ["Embedder", "EmbeddingClassifier", "has_linear_head"]


@runtime_checkable
class Embedder(Protocol):
    """A network with penultimate features: ``embed`` maps a batch (N, ...) to (N, D) features."""

    def embed(self, x: torch.Tensor) -> torch.Tensor: ...


class EmbeddingClassifier(Embedder, Protocol):
    """An :class:`Embedder` whose logits are one linear layer, ``classifier``, on those features.

    Not runtime-checkable: ``classifier`` is a submodule, which ``isinstance`` does not see from
    Python 3.12 on (it looks attributes up statically); test with :func:`has_linear_head`.
    """

    classifier: nn.Linear


def has_linear_head(net: object) -> TypeIs[EmbeddingClassifier]:
    """Whether ``net`` has an ``embed`` and a ``classifier`` (looked up as ``hasattr`` does)."""
    return hasattr(net, "embed") and hasattr(net, "classifier")
