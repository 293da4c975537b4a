"""A client's round: the method's own iteration on its shard (run_method), deterministic, with the defences as hooks."""

from __future__ import annotations

import pytest
import torch

from securedd.config import RunConfig, apply_overrides
from securedd.defences import make_defence
from securedd.distill.hooks import Hooks
from securedd.errors import ConfigError, UnknownNameError
from securedd.federated.client import check_federated, local_update


def _cfg(*extra: str) -> RunConfig:
    return apply_overrides(RunConfig(), ["data.name=digits", "method.name=dc", "method.ipc=1", "model=convnet_tiny",
                                         "seed=0", *extra])


@pytest.fixture(scope="module")
def shard(digits_train):
    return digits_train.subset(torch.arange(0, len(digits_train), 3))


def test_local_update_is_deterministic_and_leaves_the_sent_set_alone(shard):
    images, labels = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(10)
    sent = images.clone()
    a, loss = local_update(_cfg(), shard, images, labels, client=0, round_=0)
    b, _ = local_update(_cfg(), shard, images, labels, client=0, round_=0)
    c, _ = local_update(_cfg(), shard, images, labels, client=1, round_=0)
    assert torch.equal(images, sent) and torch.equal(a, b) and not torch.equal(a, c)
    assert loss > 0 and not torch.equal(a, images)


def test_defences_change_the_update_as_specified(shard):
    images, labels = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(10)
    plain, _ = local_update(_cfg(), shard, images, labels, client=0, round_=0)
    dispersed, _ = local_update(_cfg(), shard, images, labels, client=0, round_=0, defence=make_defence("ldpo-rld"))
    assert not torch.allclose(plain, dispersed)
    clipped, _ = local_update(_cfg(), shard, images, labels, client=0, round_=0,
                              defence=make_defence("localdp-gaussian", clip=0.01, noise_multiplier=0.0))
    assert float((clipped - images).norm()) == pytest.approx(0.01, rel=1e-4)
    with pytest.raises(ConfigError, match="matches a real signal"):
        local_update(_cfg("method.name=herding"), shard, images, labels, client=0, round_=0)
    with pytest.raises(ConfigError, match="method 'dm' has no setting 'outer_loop'"):
        check_federated(_cfg("method.name=dm", "method.outer_loop=2"))  # before any round, not in every client
    with pytest.raises(ConfigError, match="server-stage defence"):
        local_update(_cfg(), shard, images, labels, client=0, round_=0, defence=make_defence("median"))
    with pytest.raises(UnknownNameError, match="Valid defences"):
        make_defence("secure-aggregation")
    with pytest.raises(ConfigError, match="draw must be one of"):
        make_defence("ldpo-rld", draw="batch")


@pytest.mark.parametrize("defence", [None, "ldpo-rld", "localdp-laplace"])
def test_distribution_matching_federates_with_each_client_defence(shard, defence):
    images, labels = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(10)
    guard = make_defence(defence) if defence else None
    a, loss = local_update(_cfg("method.name=dm"), shard, images, labels, client=0, round_=0, defence=guard)
    b, _ = local_update(_cfg("method.name=dm"), shard, images, labels, client=0, round_=0, defence=guard)
    assert torch.equal(a, b) and loss > 0 and not torch.equal(a, images)
    if defence == "ldpo-rld":  # the dispersed real class means move the set elsewhere
        plain, _ = local_update(_cfg("method.name=dm"), shard, images, labels, client=0, round_=0)
        assert not torch.allclose(plain, a)


@pytest.mark.parametrize("draw", ["class", "image"])
def test_ldpo_rld_gives_a_class_real_and_synthetic_images_one_distribution(shard, draw):
    images, labels = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(10)
    seen = []
    dispersion = make_defence("ldpo-rld", draw=draw).hooks()

    class Witness(Hooks):  # the defence's hooks, recording the targets they hand the matching loss
        def bind(self, ctx):
            dispersion.bind(ctx)

        def label_targets(self, y_real, y_syn):
            seen.append(dispersion.label_targets(y_real, y_syn))
            return seen[-1]

    local_update(_cfg(), shard, images, labels, client=0, round_=0, hooks=(Witness(),))
    assert seen
    same = [bool((t_real == t_syn[0]).all()) for t_real, t_syn in seen]
    assert all(same) if draw == "class" else not any(same)


@pytest.mark.parametrize("method", ["dc", "dsa", "dm"])
def test_a_shard_without_some_classes_updates_only_the_classes_it_holds(digits_train, method):
    held = (digits_train.labels == 2) | (digits_train.labels == 7)
    shard = digits_train.subset(held.nonzero().flatten())
    images, labels = torch.randn(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(10).repeat_interleave(2)
    updated, loss = local_update(_cfg(f"method.name={method}", "method.ipc=2"), shard, images, labels, client=0, round_=0)
    changed = sorted({int(labels[i]) for i in range(20) if not torch.equal(updated[i], images[i])})
    assert changed == [2, 7] and loss > 0  # the other classes' images leave exactly as they came
