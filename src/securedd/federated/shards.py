"""Splitting the real training data among ``z`` clients: IID shards, Dirichlet label skew, or the
pathological split of a few classes per client.

The split names (:func:`make_shards`): ``iid``; ``dirichlet:ALPHA``; ``pathological:K``.
"""

from __future__ import annotations

import numpy as np
import torch

from securedd.errors import ConfigError

__all__ = ["dirichlet_shards", "iid_shards", "make_shards", "pathological_shards"]

SPLITS = "iid, dirichlet:ALPHA (e.g. dirichlet:0.5) or pathological:K (e.g. pathological:2)"


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


def pathological_shards(labels: torch.Tensor, clients: int, per_client: int,
                        generator: torch.Generator) -> list[torch.Tensor]:
    """The class-skewed split of McMahan et al. (2017): sort the images by label, cut them into
    ``clients * per_client`` pieces of equal size, and deal each client ``per_client`` pieces at random.

    A client then holds images of about ``per_client`` classes (one more where a piece spans
    a class boundary) and none of the others. Every image goes to exactly one client.
    """
    _check(len(labels), clients)
    pieces = clients * per_client
    if per_client < 1 or pieces > len(labels):
        raise ConfigError(f"the pathological split needs 1 <= K and clients x K <= {len(labels)} images; got K="
                          f"{per_client} for {clients} clients")
    shuffled = torch.randperm(len(labels), generator=generator)
    by_label = shuffled[torch.argsort(labels[shuffled], stable=True)]  # class by class, random within a class
    parts = by_label.tensor_split(pieces)
    deal = torch.randperm(pieces, generator=generator).view(clients, per_client)
    return [torch.cat([parts[int(i)] for i in row]).sort().values for row in deal]


def make_shards(labels: torch.Tensor, clients: int, split: str, generator: torch.Generator,
                num_classes: int | None = None) -> list[torch.Tensor]:
    """``split``: ``iid``, ``dirichlet:ALPHA`` or ``pathological:K``."""
    if split == "iid":
        return iid_shards(labels, clients, generator)
    kind, _, value = split.partition(":")
    try:
        number = float(value) if kind == "dirichlet" else int(value) if kind == "pathological" else None
    except ValueError:
        number = None
    if kind == "dirichlet" and number is not None:
        return dirichlet_shards(labels, clients, number, generator, num_classes)
    if kind == "pathological" and number is not None:
        return pathological_shards(labels, clients, int(number), generator)
    raise ConfigError(f"the split must be {SPLITS}; got '{split}'")


def _check(n: int, clients: int) -> None:
    if clients < 1 or clients > n:
        raise ConfigError(f"cannot split {n} images among {clients} clients; use 1 to {n} clients")
