import pytest
import torch

from securedd.data import dirichlet_partition, iid_partition
from securedd.errors import ConfigError
from securedd.rng import make_generator

LABELS = torch.arange(10).repeat_interleave(100)


def test_iid_shards_cover_everything_once_with_equal_class_mix():
    shards = iid_partition(LABELS, 3, make_generator(0, "p"))
    allidx = torch.cat(shards)
    assert len(allidx) == 1000 and len(allidx.unique()) == 1000
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    for s in shards:
        counts = LABELS[s].bincount(minlength=10)
        assert counts.max() - counts.min() <= 1


def test_dirichlet_small_alpha_skews_labels():
    skewed = dirichlet_partition(LABELS, 5, 0.1, make_generator(0, "p"))
    even = dirichlet_partition(LABELS, 5, 1000.0, make_generator(0, "p"))
    assert len(torch.cat(skewed).unique()) == 1000

    def spread(shards):
        return sum(float(LABELS[s].bincount(minlength=10).float().std()) for s in shards)

    assert spread(skewed) > 3 * spread(even)


def test_partition_errors():
    with pytest.raises(ConfigError):
        iid_partition(LABELS, 0, make_generator(0, "p"))
    with pytest.raises(ConfigError):
        dirichlet_partition(LABELS, 3, -1.0, make_generator(0, "p"))
