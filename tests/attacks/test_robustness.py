"""DeepFool accuracy: clean accuracy at budget 0, falling with the budget, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from securedd.attacks.robustness import deepfool_accuracy
from securedd.data import load_dataset
from securedd.errors import ConfigError
from securedd.models import create_model
from securedd.rng import make_generator
from securedd.training import TrainSettings, score_model, train_model

pytest.importorskip("foolbox")


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    gen = make_generator(0, "test", "deepfool")
    model = create_model("convnet", train.spec.shape, train.spec.num_classes, generator=gen)
    train_model(model, train.images, train.labels, TrainSettings(epochs=15, batch_size=128), gen)
    return model, test.subset(torch.arange(120))


def test_budget_zero_is_the_clean_accuracy_and_accuracy_falls_with_the_budget(trained):
    model, test = trained
    linf = deepfool_accuracy(model, test, [0.0, 0.02, 0.1, 0.5])
    assert linf[0] == pytest.approx(score_model(model, test).accuracy)
    assert all(np.diff(linf) <= 0) and linf[-1] < 5 < linf[0] - 50
    l2 = deepfool_accuracy(model, test, [0.0, 0.5, 4.0], norm="l2", batch=50)
    assert l2[0] == pytest.approx(linf[0]) and l2[-1] < l2[1] < l2[0]


def test_the_batch_size_does_not_change_the_result(trained):
    model, test = trained
    budgets = [0.0, 0.05, 0.1]
    np.testing.assert_array_equal(deepfool_accuracy(model, test, budgets, batch=120),
                                  deepfool_accuracy(model, test, budgets, batch=7))


def test_bad_norms_and_budgets_are_refused(trained):
    model, test = trained
    with pytest.raises(ConfigError, match="norm"):
        deepfool_accuracy(model, test, [0.1], norm="l1")
    with pytest.raises(ConfigError, match=">= 0"):
        deepfool_accuracy(model, test, [-0.1, 0.2])
