"""DD and SLDD: the run, what the artifact stores, and evaluation replaying it as distilled."""

from __future__ import annotations

import pytest
import torch

from securedd.api import distill, evaluate
from securedd.config import RunConfig, apply_overrides
from securedd.distill import run_method
from securedd.distill.bilevel import outer_cross_entropy, raw_step_loss, step_plan, unrolled_loss
from securedd.distill.dataset_distillation import initial_label_logits
from securedd.errors import ConfigError
from securedd.models.functional import flat_params
from securedd.models.init import seeded_network
from securedd.training import replay_steps


def _cfg(method: str = "dd", *extra: str) -> RunConfig:
    base = [f"method.name={method}", "data.name=digits", "model=lenet", "method.ipc=2", "method.iterations=30",
            "method.batch_real=200", "seed=3"]
    return apply_overrides(RunConfig(), [*base, *extra])


def test_dd_learns_and_stores_positive_step_rates(digits_train):
    result = run_method(_cfg(), digits_train, progress=False)
    syn = result.synthetic
    assert result.history[-1] < result.history[0]
    assert syn.lrs is not None and syn.lrs.shape == (2 * 3,) and (syn.lrs > 0).all()  # 2 steps x 3 epochs
    assert syn.extras == {} and syn.labels.dtype == torch.int64
    assert result.metadata["evaluation"] == {"protocol": "replay", "model": "lenet", "steps": 2, "epochs": 3,
                                             "init": "fixed", "init_scheme": "xavier", "init_seed": 3}


def test_frozen_step_rates_stay_at_lr_init_while_the_labels_learn(digits_train):
    result = run_method(_cfg("sldd", "method.learn_lrs=false", "method.lr_init=0.03"), digits_train, progress=False)
    learned = run_method(_cfg("sldd", "method.lr_init=0.03"), digits_train, progress=False)
    assert result.synthetic.lrs is not None and torch.allclose(result.synthetic.lrs, torch.full((6,), 0.03))
    assert learned.synthetic.lrs is not None and not torch.allclose(learned.synthetic.lrs, torch.full((6,), 0.03))
    assert result.history[-1] < result.history[0]


def test_replay_in_evaluation_is_the_unroll_of_distillation(digits_train, digits_test):
    art = distill(_cfg(), real=digits_train, progress=False)
    hints = art.metadata["evaluation"]
    spec = digits_train.spec
    net = seeded_network("lenet", spec.shape, spec.num_classes, hints["init_seed"], hints["init_scheme"])
    start = flat_params(net)
    plan = step_plan(10, 2, 2, 3)
    x, y = digits_test.images, digits_test.labels
    final_loss = unrolled_loss(net, start, art.images, art.labels, art.lrs, plan,
                               lambda theta: outer_cross_entropy(net, theta, x, y))
    replay_steps(net, art.images, art.labels, art.lrs, steps=2, num_classes=10)
    replayed = torch.nn.functional.cross_entropy(net(x), y)
    assert torch.allclose(final_loss, replayed, rtol=1e-4)
    report = evaluate(art, test=digits_test, progress=False)
    assert report.archs[0].model == "lenet" and len(report.archs[0].accuracies) == 1  # fixed: one network
    accuracy = (net(x).argmax(1) == y).float().mean().item() * 100
    assert report.archs[0].mean == pytest.approx(accuracy, abs=1e-6)


def test_random_init_draws_fresh_networks_and_records_no_seed(digits_train, digits_test):
    art = distill(_cfg("dd", "method.init=random", "method.nets_per_step=2", "method.iterations=3"),
                  real=digits_train, progress=False)
    assert art.metadata["evaluation"]["init"] == "random" and "init_seed" not in art.metadata["evaluation"]
    report = evaluate(art, test=digits_test, runs=3, progress=False)
    assert len(set(report.archs[0].accuracies)) > 1  # three different networks


def test_sldd_learns_label_logits_and_stores_distributions(digits_train):
    start = run_method(_cfg("sldd", "method.iterations=0"), digits_train, progress=False).synthetic
    syn = run_method(_cfg("sldd"), digits_train, progress=False).synthetic
    assert syn.labels.shape == (20, 10) and syn.labels.dtype == torch.float32
    assert torch.allclose(syn.labels.sum(1), torch.ones(20))
    assert not torch.allclose(syn.labels, start.labels)
    assert (syn.labels.argmax(1) == torch.arange(10).repeat_interleave(2)).all()  # one-hot start keeps its class


def test_raw_label_targets_are_stored_unrestricted_and_replay_as_distilled(digits_train, digits_test):
    art = distill(_cfg("sldd", "method.label_targets=raw", "method.lr=0.05"), real=digits_train, progress=False)
    assert art.labels.shape == (20, 10) and not torch.allclose(art.labels.sum(1), torch.ones(20), atol=1e-2)
    assert (art.labels < 0).any()  # unrestricted: a label can push a class down
    hints = art.metadata["evaluation"]
    spec = digits_train.spec
    net = seeded_network("lenet", spec.shape, spec.num_classes, hints["init_seed"], hints["init_scheme"])
    x, y = digits_test.images, digits_test.labels
    final_loss = unrolled_loss(net, flat_params(net), art.images, art.labels, art.lrs, step_plan(10, 2, 2, 3),
                               lambda theta: outer_cross_entropy(net, theta, x, y), loss_fn=raw_step_loss)
    replay_steps(net, art.images, art.labels, art.lrs, steps=2, num_classes=10)
    assert torch.allclose(final_loss, torch.nn.functional.cross_entropy(net(x), y), rtol=1e-4)


def test_unknown_label_targets_are_refused(digits_train):
    with pytest.raises(ConfigError, match="label_targets must be one of softmax, raw"):
        run_method(_cfg("sldd", "method.label_targets=logits"), digits_train, progress=False)


def test_label_initialisations():
    labels, gen = torch.tensor([0, 1, 2, 3]), torch.Generator().manual_seed(0)
    onehot = initial_label_logits("onehot", labels, 4, 5.0, gen)
    assert torch.equal(onehot.argmax(1), labels) and onehot.max() == 5.0
    assert initial_label_logits("uniform", labels, 4, 5.0, gen).abs().sum() == 0
    mixed = initial_label_logits("mixed", labels, 4, 5.0, gen)
    assert ((mixed == 2.5).sum(1) == 2).all() and (mixed[torch.arange(4), labels] == 2.5).all()
    assert initial_label_logits("random", labels, 4, 5.0, gen).std() > 0.5
    with pytest.raises(ConfigError, match="label_init"):
        initial_label_logits("fuzzy", labels, 4, 5.0, gen)


@pytest.mark.parametrize(("override", "message"), [
    ("method.steps=3", "multiple of the number of GD steps"),
    ("method.init=pretrained", "method.init must be one of"),
    ("method.memory=huge", "method.memory must be one of"),
    ("method.init_scheme=orthogonal", "method.init_scheme must be one of"),
    ("method.lr_init=0", "lr_init must be > 0"),
])
def test_bad_settings_are_refused_with_the_fix(override, message, digits_train):
    with pytest.raises(ConfigError, match=message):
        run_method(_cfg("dd", override), digits_train, progress=False)


def test_pool_init_learns_for_trained_networks_and_evaluates_on_held_out_ones(tmp_path, digits_train, digits_test):
    from securedd.training.pool import train_pool

    pool = train_pool("lenet", digits_train, tmp_path / "pool", count=3, epochs=1, progress=False)
    art = distill(_cfg("dd", "method.init=pool", f"method.pool='{pool}'", "method.nets_per_step=2",
                       "method.iterations=3", "method.relabel=3:8"), real=digits_train, progress=False)
    hints = art.metadata["evaluation"]
    assert hints["init"] == "pool" and hints["held_out"] == [2] and hints["relabel"] == [3, 8]
    report = evaluate(art, test=digits_test, progress=False)
    assert len(report.archs[0].accuracies) == 1  # the one held-out network
    with pytest.raises(ConfigError, match="holds lenet networks"):
        run_method(_cfg("dd", "model=mlp", "method.init=pool", f"method.pool='{pool}'"), digits_train,
                   progress=False)
    with pytest.raises(ConfigError, match="relabel"):
        run_method(_cfg("dd", "method.relabel=3:3"), digits_train, progress=False)


def _secdd(tmp_path, digits_train, *extra: str):  # type: ignore[no-untyped-def]
    from securedd.distill import METHODS, DistillContext

    cfg = _cfg("secdd", f"method.key='{tmp_path / 'k.key'}'", "method.mode=learn", "model=convnet_tiny",
               "method.adversary_models=mlp", *extra)
    cls = METHODS.get("secdd")
    return cls(cls.parse_params(cfg.method.params), DistillContext(cfg, digits_train))


def test_adversarial_secdd_penalises_what_non_key_networks_learn_and_optimising_lowers_it(tmp_path, digits_train):
    method = _secdd(tmp_path, digits_train, "method.adversaries=2", "method.adversary_weight=1",
                    "method.adversary_lr=0.2", "method.adversary_epochs=3", "method.image_init=real")
    syn = method.init_synthetic()
    gen = method.ctx.generator("secdd/adversaries")
    state = gen.get_state()

    def penalty() -> torch.Tensor:
        gen.set_state(state)  # the same two adversaries every time
        return method.adversary_penalty(syn)

    before = penalty()
    before.backward()
    assert before.item() > 0.1  # real images with one-hot labels teach an MLP something
    assert syn.images.grad is not None and syn.images.grad.abs().sum() > 0
    assert syn.labels.grad is not None and syn.labels.grad.abs().sum() > 0
    opt = torch.optim.Adam([syn.images, syn.labels], lr=0.05)
    for _ in range(8):
        opt.zero_grad()
        penalty().backward()
        opt.step()
    assert penalty().item() < 0.5 * before.item()
    off = _secdd(tmp_path, digits_train, "method.adversaries=2", "method.adversary_weight=0")
    assert off.adversary_penalty(off.init_synthetic()).item() == 0


@pytest.mark.parametrize(("override", "message"), [
    ("method.adversaries=-1", "method.adversaries must be >= 0"),
    ("method.adversary_labels=fuzzy", "adversary_labels one of soft, hard"),
    ("method.adversary_lr=0", "adversary_lr > 0"),
])
def test_bad_adversary_settings_are_refused(override, message, tmp_path, digits_train):
    with pytest.raises(ConfigError, match=message):
        _secdd(tmp_path, digits_train, override)


def test_a_hard_label_adversary_distils_end_to_end(tmp_path, digits_train):
    cfg = _cfg("secdd", f"method.key='{tmp_path / 'k.key'}'", "method.mode=learn", "method.iterations=2",
               "model=convnet_tiny", "method.adversaries=1", "method.adversary_labels=hard", "method.adversary_epochs=2")
    result = run_method(cfg, digits_train, progress=False)
    assert len(result.history) == 2 and all(torch.isfinite(torch.tensor(result.history)))
