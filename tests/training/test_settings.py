"""The one table of training defaults and the protocol's epochs rule."""

import dataclasses

from securedd.config import EvalConfig
from securedd.training import EPOCHS_WITH_DSA, EPOCHS_WITHOUT_DSA, TrainSettings, default_epochs, eval_settings


def test_the_epochs_rule_is_1000_with_dsa_and_300_without():
    assert (default_epochs(True), default_epochs(False)) == (EPOCHS_WITH_DSA, EPOCHS_WITHOUT_DSA) == (1000, 300)
    assert eval_settings(EvalConfig(), "crop").epochs == 1000
    assert eval_settings(EvalConfig(dsa=False), "crop").epochs == 300
    assert eval_settings(EvalConfig(epochs=7, dsa=False), "crop").epochs == 7


def test_the_optimiser_defaults_are_the_configs():
    asked, table = EvalConfig(), TrainSettings()
    assert (table.lr, table.momentum, table.weight_decay, table.batch_size) == (
        asked.lr, asked.momentum, asked.weight_decay, asked.batch_size)
    assert eval_settings(asked, "crop") == dataclasses.replace(table, dsa_strategy="crop")


def test_a_sets_requests_apply_unless_the_config_says_otherwise():
    asked = eval_settings(EvalConfig(), "crop", hint_dsa_strategy="color_crop", cutmix_prob=0.5, cutmix_beta=2.0)
    assert (asked.dsa_strategy, asked.cutmix_prob, asked.cutmix_beta) == ("color_crop", 0.5, 2.0)
    told = eval_settings(EvalConfig(dsa_strategy="scale", cutmix=0.0), "crop", hint_dsa_strategy="color_crop",
                         cutmix_prob=0.5)
    assert (told.dsa_strategy, told.cutmix_prob) == ("scale", 0.0)
    assert eval_settings(EvalConfig(dsa=False), "crop", hint_dsa_strategy="color_crop").dsa_strategy is None
