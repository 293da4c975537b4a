"""Doorping workers: the trigger, its optimisation, and an attacker's round beside honest ones."""

from __future__ import annotations

import pytest
import torch

from securedd.config import RunConfig, apply_overrides
from securedd.data import load_dataset
from securedd.distill.synthetic import class_labels
from securedd.errors import ConfigError
from securedd.federated.apps import run_in_process
from securedd.federated.client import local_update
from securedd.federated.doorping import (
    Doorping,
    arm,
    attack_success,
    optimise_trigger,
    pixel_bounds,
    stamp,
    top_neuron,
    trigger_mask,
    trigger_pixels,
)
from securedd.federated.settings import FederationSettings
from securedd.models import create_model


@pytest.fixture(scope="module")
def shard():
    train = load_dataset("digits", "train")
    return train.subset(torch.arange(0, len(train), 3))


def _config(*extra: str):
    return apply_overrides(RunConfig(), ["data.name=digits", "method.name=dc", "method.ipc=1", "model=convnet_tiny",
                                         "seed=0", "method.outer_loop=2", "method.inner_loop=1",
                                         "method.batch_real=32", "method.compile=false", *extra])


def test_the_trigger_is_a_2x2_patch_one_pixel_in_from_the_bottom_right(shard):
    mask = trigger_mask(shard.spec)
    assert mask.sum() == 4 and torch.nonzero(mask[0]).tolist() == [[5, 5], [5, 6], [6, 5], [6, 6]]
    images = shard.images[:4]
    stamped = stamp(images, torch.full(shard.spec.shape, 9.0), mask)
    assert torch.equal(stamped * (1 - mask), images * (1 - mask)) and (stamped[:, :, 5:7, 5:7] == 9).all()
    assert Doorping().count(5) == 2 and Doorping().count(10) == 4 and Doorping(malicious=1).count(3) == 1


def test_trigger_optimisation_drives_the_top_neuron_and_changes_only_the_patch(shard):
    net = create_model("convnet_tiny", shard.spec.shape, 10, generator=torch.Generator().manual_seed(0))
    mask, images = trigger_mask(shard.spec), shard.images[:16]
    start = torch.zeros(shard.spec.shape)
    unit = top_neuron(net)
    before = net.embed(stamp(images, start, mask))[:, unit].mean()
    trigger, steps = optimise_trigger(net, start, mask, images, Doorping(steps=200))
    after = net.embed(stamp(images, trigger, mask))[:, unit].mean()
    assert after > before + 0.5 * (9 * before.abs()) and 1 <= steps <= 200
    assert torch.equal(stamp(images, trigger, mask) * (1 - mask), images * (1 - mask))


def test_an_attackers_round_differs_and_keeps_its_trigger_while_honest_rounds_do_not_change(shard):
    cfg = _config()
    images = torch.randn((10, *shard.spec.shape), generator=torch.Generator().manual_seed(1))
    labels = class_labels(10, 1)
    honest, _ = local_update(cfg, shard, images, labels, client=0, round_=0)
    state: dict = {}
    attack = Doorping(rate=0.05, steps=30)

    def attacker(round_: int) -> torch.Tensor:
        poisoned, trigger = arm(shard, attack, state, cfg.seed, 0)
        return local_update(cfg, poisoned, images, labels, client=0, round_=round_, hooks=(trigger,))[0]

    bad = attacker(0)
    first = state["trigger"].clone()
    attacker(1)
    assert not torch.equal(honest, bad) and not torch.equal(first, state["trigger"])
    assert torch.equal(local_update(cfg, shard, images, labels, client=0, round_=0)[0], honest)  # shard untouched


def test_a_federation_with_attackers_records_them_and_hands_back_their_triggers(tmp_path):
    cfg = _config()
    states: dict = {}
    settings = FederationSettings(cfg, clients=3, rounds=2, out=str(tmp_path / "fed.safetensors"), progress=False,
                                  doorping=Doorping(rate=0.05, steps=30))
    art = run_in_process(settings, states)
    assert art.metadata["info"]["federated"]["doorping"]["workers"] == 1
    assert set(states[0]) == {"trigger"} and states[1] == {} and states[2] == {}
    test = load_dataset("digits", "test")
    model = create_model("convnet_tiny", test.spec.shape, 10, generator=torch.Generator().manual_seed(0))
    found = attack_success(model, test, states[0]["trigger"], trigger_mask(test.spec), target=0)
    assert 0 <= found["asr"] <= 100 and 0 <= found["asr_inclusive"] <= 100


def test_the_trigger_stays_a_valid_image_patch_and_minibatch_steps_are_seeded(shard):
    net = create_model("convnet_tiny", shard.spec.shape, 10, generator=torch.Generator().manual_seed(0))
    mask, images = trigger_mask(shard.spec), shard.images[:16]
    low, high = pixel_bounds(shard.spec)
    start = torch.full(shard.spec.shape, 50.0)  # far outside: projected in before the first step
    free, _ = optimise_trigger(net, start, mask, images, Doorping(steps=50))
    assert float(free.max()) > float(high.max())  # unbounded, the goal drives it out of range
    bounded, _ = optimise_trigger(net, start, mask, images, Doorping(steps=50), bounds=(low, high))
    assert bool(((bounded >= low) & (bounded <= high)).all())
    settings = Doorping(steps=20, batch=4)
    one = optimise_trigger(net, start, mask, images, settings, generator=torch.Generator().manual_seed(1))[0]
    two = optimise_trigger(net, start, mask, images, settings, generator=torch.Generator().manual_seed(1))[0]
    other = optimise_trigger(net, start, mask, images, settings, generator=torch.Generator().manual_seed(2))[0]
    assert torch.equal(one, two) and not torch.equal(one, other)
    with pytest.raises(ConfigError, match="batch >= 0"):
        Doorping(batch=-1)


def test_a_plateau_ends_the_trigger_steps_and_patience_zero_keeps_the_reference_rule(shard):
    net = create_model("convnet_tiny", shard.spec.shape, 10, generator=torch.Generator().manual_seed(0))
    mask, images = trigger_mask(shard.spec), shard.images[:16]
    low, high = pixel_bounds(shard.spec)
    start = torch.zeros(shard.spec.shape)
    # in the pixel range the 10x goal is out of reach: the loss stops falling long before 400 steps
    early, n_early = optimise_trigger(net, start, mask, images, Doorping(steps=400, patience=10), bounds=(low, high))
    full, n_full = optimise_trigger(net, start, mask, images, Doorping(steps=400, patience=0), bounds=(low, high))
    assert n_full == 400 and 10 < n_early < 400
    unit = top_neuron(net)
    with torch.no_grad():
        got = [float(net.embed(stamp(images, t, mask))[:, unit].mean()) for t in (start, early, full)]
    assert got[1] > got[0] and got[1] == pytest.approx(got[2], rel=0.02)  # the extra steps add nothing
    with pytest.raises(ConfigError, match="patience >= 0"):
        Doorping(patience=-1)


def test_trigger_pixels_are_the_patch_in_pixel_units_unclamped(shard):
    spec = shard.spec
    low, high = pixel_bounds(spec)
    inside = torch.full(spec.shape, float(low.flatten()[0]))  # pixel 0 everywhere
    assert trigger_pixels(inside, spec) == pytest.approx([0.0] * 4, abs=1e-6)
    far = torch.full(spec.shape, 100.0)  # an unbounded trigger: far above pixel 1
    assert all(v > 1.5 for v in trigger_pixels(far, spec)) and len(trigger_pixels(far, spec)) == 4
