"""Client shards: IID and Dirichlet splits cover every image exactly once."""

from __future__ import annotations

import pytest
import torch

from securedd.errors import ConfigError
from securedd.federated.shards import dirichlet_shards, iid_shards, make_shards, pathological_shards


def _labels(n: int = 1000, k: int = 10) -> torch.Tensor:
    return torch.arange(n) % k


def test_iid_shards_partition_the_data_evenly():
    shards = iid_shards(_labels(1003), 5, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(shards).tolist()) == list(range(1003))
    assert {len(s) for s in shards} <= {200, 201}
    again = iid_shards(_labels(1003), 5, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(shards, again, strict=True))  # same seed, same shards


def test_dirichlet_alpha_controls_label_skew():
    labels = _labels(5000)

    def skew(alpha: float) -> float:  # mean over clients of the largest class share
        shards = dirichlet_shards(labels, 5, alpha, torch.Generator().manual_seed(1))
        assert sorted(torch.cat(shards).tolist()) == list(range(5000))
        return sum(float(labels[s].bincount(minlength=10).max()) / len(s) for s in shards) / 5

    assert skew(0.1) > 0.4 > 0.15 > skew(100.0)


def test_bad_splits_are_refused_with_the_fix():
    gen = torch.Generator().manual_seed(0)
    for bad in ("pathological", "pathological:two", "dirichlet:x", "shards:2"):
        with pytest.raises(ConfigError, match="iid, dirichlet:ALPHA .* or pathological:K"):
            make_shards(_labels(), 3, bad, gen)
    with pytest.raises(ConfigError, match="clients x K"):
        make_shards(_labels(20), 3, "pathological:7", gen)
    with pytest.raises(ConfigError, match="1 to 10 clients"):
        iid_shards(_labels(10), 11, gen)
    with pytest.raises(ConfigError, match="alpha must be > 0"):
        make_shards(_labels(), 3, "dirichlet:0", gen)


def test_the_pathological_split_gives_each_client_a_few_classes_and_every_image_once():
    labels = _labels(5000)
    shards = make_shards(labels, 5, "pathological:2", torch.Generator().manual_seed(3))
    assert sorted(torch.cat(shards).tolist()) == list(range(5000))
    assert [len(labels[s].unique()) for s in shards] == [2] * 5  # 10 pieces of exactly one class each here
    again = pathological_shards(labels, 5, 2, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(shards, again, strict=True))
    uneven = make_shards(labels, 3, "pathological:2", torch.Generator().manual_seed(3))
    # 6 pieces of 833 images over classes of 500: a piece spans 2 or 3 classes, a client at most 6 of the 10
    assert all(2 <= len(labels[s].unique()) <= 6 for s in uneven)
