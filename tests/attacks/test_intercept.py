"""The train-on-intercept attack: the attacker's choices, and that its training really learns."""

from __future__ import annotations

import pytest
import torch

from securedd.api import distill
from securedd.attacks.intercept import InterceptArm, InterceptParams, InterceptResult, InterceptTarget, TrainOnIntercept
from securedd.config import RunConfig, apply_overrides
from securedd.errors import ConfigError
from securedd.models import create_model
from securedd.training import TrainSettings, train_model


def _arm(model: str, lr: float, val: float, test: float) -> InterceptArm:
    return InterceptArm(model, "plain", "soft", "sgd", lr, val, test)


def test_the_attacker_picks_by_its_own_validation_images_never_by_the_test_split():
    result = InterceptResult([_arm("mlp", 0.01, 60.0, 40.0), _arm("mlp", 0.1, 50.0, 70.0),
                              _arm("lenet", 0.01, 55.0, 65.0), _arm("lenet", 0.1, 20.0, 10.0)], key_accuracy=90.0)
    picks = {(a.model, a.lr) for a in result.picks()}
    assert picks == {("mlp", 0.01), ("lenet", 0.01)}  # each combination at its best validation lr
    assert (result.pick.model, result.pick.test_accuracy) == ("mlp", 40.0)  # not the 70% it could not know
    assert result.best_on_test.test_accuracy == 65.0  # the best of the picks, reported apart
    assert "key holder 90.00% (44% of it)" in result.summary


def test_training_on_a_learnable_set_learns_so_the_attack_is_no_placebo(digits_train, digits_test):
    cfg = apply_overrides(RunConfig(), ["method.name=random", "data.name=digits", "method.ipc=10", "seed=0"])
    art = distill(cfg, real=digits_train, progress=False)  # real images, hard labels: anyone can learn from them
    validation = digits_train.subset(torch.arange(100))
    attack = TrainOnIntercept(models=("mlp", "convnet_tiny"), protocols=("plain",), lrs=(0.01, 0.1), epochs=100)
    result = attack(InterceptTarget(art, validation, digits_test))
    assert len(result.arms) == 2 * 2 and {a.labels for a in result.arms} == {"hard"}  # no soft labels to use
    assert result.pick.test_accuracy > 60 and result.key_accuracy is None
    again = attack(InterceptTarget(art, validation, digits_test))
    assert again.arms == result.arms  # seeded


def test_settings_and_targets_that_cannot_work_are_refused(digits_train, digits_test):
    with pytest.raises(ConfigError, match="attack.optimizers takes one or more of sgd, adam"):
        InterceptParams(optimizers=("lbfgs",))
    with pytest.raises(ConfigError, match="positive learning rates"):
        InterceptParams(lrs=(0.0,))
    cfg = apply_overrides(RunConfig(), ["method.name=random", "data.name=digits", "method.ipc=1", "seed=0"])
    art = distill(cfg, real=digits_train, progress=False)
    flat = digits_test.subset(torch.arange(10))
    object.__setattr__(flat, "spec", type(flat.spec)(**{**flat.spec.__dict__, "num_classes": 3}))
    with pytest.raises(ConfigError, match="the validation images are"):
        TrainOnIntercept(models=("mlp",), epochs=1)(InterceptTarget(art, flat, digits_test))


def test_adam_trains_when_asked_and_an_unknown_optimiser_is_refused(digits_train):
    images, labels = digits_train.images[:40], digits_train.labels[:40]
    nets = []
    for optimizer in ("sgd", "adam"):
        net = create_model("mlp", digits_train.spec.shape, 10, generator=torch.Generator().manual_seed(0))
        train_model(net, images, labels, TrainSettings(epochs=3, optimizer=optimizer), torch.Generator().manual_seed(1))
        nets.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert not torch.equal(nets[0], nets[1])
    with pytest.raises(ConfigError, match="optimiser must be one of sgd, adam"):
        TrainSettings(optimizer="rmsprop")


def test_pretraining_carries_over_a_fresh_head_and_needs_images_of_the_right_shape(digits_train, digits_test):
    from securedd.attacks.intercept import FinetuneTarget, PretrainedFinetune
    from securedd.data.spec import RealData

    cfg = apply_overrides(RunConfig(), ["method.name=random", "data.name=digits", "method.ipc=1", "seed=0"])
    art = distill(cfg, real=digits_train, progress=False)
    validation = digits_train.subset(torch.arange(100))
    # public images of the same task: the fresh head must learn again, the features carry over
    public = RealData(digits_train.images[200:800], digits_train.labels[200:800], digits_train.spec)
    attack = PretrainedFinetune(models=("convnet_tiny",), protocols=("plain",), lrs=(0.1,), epochs=100,
                                pretrain_epochs=20, pretrain_lr=0.05)
    tuned = attack(FinetuneTarget(art, validation, digits_test, public=public))
    fresh = TrainOnIntercept(models=("convnet_tiny",), protocols=("plain",), lrs=(0.1,), epochs=100)(
        InterceptTarget(art, validation, digits_test))
    # one image per class: the pretrained features leave the fresh network behind
    assert tuned.pick.test_accuracy > fresh.pick.test_accuracy + 2
    with pytest.raises(ConfigError, match="public images in the artifact's shape"):
        attack(FinetuneTarget(art, validation, digits_test))


def test_the_student_learns_from_the_teacher_alone_never_from_the_public_labels(digits_train, digits_test):
    from securedd.attacks.intercept import FinetuneTarget, KDFromLabels
    from securedd.data.spec import RealData

    cfg = apply_overrides(RunConfig(), ["method.name=random", "data.name=digits", "method.ipc=10", "seed=0"])
    art = distill(cfg, real=digits_train, progress=False)
    validation = digits_train.subset(torch.arange(100))
    unlabelled = digits_train.images[300:900]
    attack = KDFromLabels(models=("convnet_tiny",), protocols=("plain",), lrs=(0.1,), epochs=100,
                          student="convnet_tiny", student_epochs=30, student_lr=0.05)
    honest = attack(FinetuneTarget(art, validation, digits_test,
                                   public=RealData(unlabelled, digits_train.labels[300:900], digits_train.spec)))
    scrambled = attack(FinetuneTarget(art, validation, digits_test,
                                      public=RealData(unlabelled, torch.zeros(600, dtype=torch.long),
                                                      digits_train.spec)))
    assert scrambled.student_test_accuracy == honest.student_test_accuracy  # the labels were never read
    assert honest.teacher.pick.test_accuracy > 60 and honest.student_test_accuracy > 60  # real knowledge passed on
    assert honest.public_images == 600 and "its teacher" in honest.summary
