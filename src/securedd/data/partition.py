"""Splitting a dataset among data owners: IID shards and Dirichlet(alpha) label skew."""

from __future__ import annotations

import numpy as np
import torch

from securedd.errors import ConfigError

__all__ = ["dirichlet_partition", "iid_partition"]


def _check_clients(num_clients: int, n: int) -> None:
    if num_clients < 1:
        raise ConfigError(f"the number of clients must be at least 1; got {num_clients}")
    if num_clients > n:
        raise ConfigError(f"cannot split {n} images among {num_clients} clients")


def iid_partition(labels: torch.Tensor, num_clients: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Non-overlapping shards of (almost) equal size and the same class mix.

    Each class is shuffled and dealt round-robin, so every shard holds each class in
    proportion. Returns one sorted LongTensor of indices per client.
    """
    _check_clients(num_clients, len(labels))
    shards: list[list[torch.Tensor]] = [[] for _ in range(num_clients)]
    offset = 0
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        for k in range(num_clients):
            shards[(k + offset) % num_clients].append(idx[k::num_clients])
        offset += len(idx) % num_clients  # keep shard sizes within one of each other
    return [torch.cat(parts).sort().values for parts in shards]


def dirichlet_partition(
    labels: torch.Tensor,
    num_clients: int,
    alpha: float,
    generator: torch.Generator,
    *,
    min_size: int = 1,
    max_tries: int = 100,
) -> list[torch.Tensor]:
    """Label-skewed shards: each class is divided among clients by Dirichlet(alpha) proportions.

    Small ``alpha`` gives strong skew. Draws are retried until every client has at least
    ``min_size`` images.
    """
    _check_clients(num_clients, len(labels))
    if alpha <= 0:
        raise ConfigError(f"the Dirichlet alpha must be positive; got {alpha}")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    rng = np.random.default_rng(seed)
    classes = torch.unique(labels).tolist()
    for _ in range(max_tries):
        shards: list[list[torch.Tensor]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = torch.nonzero(labels == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=generator)]
            cuts = (np.cumsum(rng.dirichlet([alpha] * num_clients))[:-1] * len(idx)).astype(int)
            for k, part in enumerate(np.split(idx.numpy(), cuts)):
                shards[k].append(torch.from_numpy(part))
        out = [torch.cat(parts).sort().values for parts in shards]
        if min(len(s) for s in out) >= min_size:
            return out
    raise ConfigError(
        f"could not give every one of {num_clients} clients at least {min_size} images with "
        f"alpha={alpha} in {max_tries} draws; raise alpha or lower the number of clients"
    )
