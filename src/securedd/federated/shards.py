"""Splitting the real training data among ``z`` clients: IID shards or Dirichlet label skew."""

from __future__ import annotations

import numpy as np
import torch

from securedd.errors import ConfigError

__all__ = ["dirichlet_shards", "iid_shards", "make_shards"]


def iid_shards(labels: torch.Tensor, clients: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``clients`` non-overlapping shards of a random permutation, sizes differing by at most 1 (SFDD)."""
    _check(len(labels), clients)
    order = torch.randperm(len(labels), generator=generator)
    return [shard.sort().values for shard in order.tensor_split(clients)]


def dirichlet_shards(labels: torch.Tensor, clients: int, alpha: float, generator: torch.Generator,
                     num_classes: int | None = None) -> list[torch.Tensor]:
    """Label-skewed shards: each class is split among clients by proportions ~ Dirichlet(alpha).

    Small ``alpha`` gives each client few classes; large ``alpha`` approaches IID. Every
    image goes to exactly one client.
    """
    _check(len(labels), clients)
    if alpha <= 0:
        raise ConfigError(f"the Dirichlet alpha must be > 0; got {alpha}")
    k = int(num_classes if num_classes is not None else int(labels.max()) + 1)
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    parts: list[list[torch.Tensor]] = [[] for _ in range(clients)]
    for c in range(k):
        members = (labels == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        weights = torch.from_numpy(rng.dirichlet(np.full(clients, float(alpha))))
        cuts = (weights.cumsum(0) * len(members)).round().long().tolist()[:-1]
        for i, piece in enumerate(torch.tensor_split(members, cuts)):
            parts[i].append(piece)
    shards = [torch.cat(p).sort().values for p in parts]
    if any(len(s) == 0 for s in shards):
        raise ConfigError(f"Dirichlet({alpha}) left a client without images; use a larger alpha or fewer clients")
    return shards


def make_shards(labels: torch.Tensor, clients: int, split: str, generator: torch.Generator,
                num_classes: int | None = None) -> list[torch.Tensor]:
    """``split``: ``iid`` or ``dirichlet:ALPHA``."""
    if split == "iid":
        return iid_shards(labels, clients, generator)
    if split.startswith("dirichlet:"):
        try:
            alpha = float(split.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"the split must be iid or dirichlet:ALPHA (e.g. dirichlet:0.5); got '{split}'") from None
        return dirichlet_shards(labels, clients, alpha, generator, num_classes)
    raise ConfigError(f"the split must be iid or dirichlet:ALPHA (e.g. dirichlet:0.5); got '{split}'")


def _check(n: int, clients: int) -> None:
    if clients < 1 or clients > n:
        raise ConfigError(f"cannot split {n} images among {clients} clients; use 1 to {n} clients")
