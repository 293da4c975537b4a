"""Evaluation protocols: the hints a set stores, their checks, and what each protocol plans."""

from __future__ import annotations

import pytest
import torch

from securedd.config import EvalConfig
from securedd.data import dataset_spec
from securedd.errors import ArtifactError, ConfigError, MismatchError, UnknownNameError
from securedd.evaluation.protocols import EVAL_PROTOCOLS, EvalHints, ReplayHints, ReplayProtocol, SGDHints
from securedd.models.init import seeded_network
from securedd.secure.keys import TargetKey

# evaluation metadata as artifacts have stored it (DD fixed / random / pool + poisoning, SLDD, SecDD, IDC)
STORED = [
    {"protocol": "replay", "model": "lenet", "steps": 2, "epochs": 3, "init": "fixed", "init_scheme": "xavier",
     "init_seed": 5},
    {"protocol": "replay", "model": "lenet", "steps": 1, "epochs": 3, "init": "random", "init_scheme": "xavier"},
    {"protocol": "replay", "model": "convnet_tiny", "steps": 1, "epochs": 1, "init": "pool", "init_scheme": "xavier",
     "pool": "pools/p", "held_out": [2], "relabel": [3, 8]},
    {"protocol": "replay", "model": "lenet", "steps": 1, "epochs": 3, "init": "fixed", "init_scheme": "xavier",
     "init_seed": 0, "labels": "soft"},
    {"protocol": "replay", "steps": 1, "epochs": 3, "init": "key", "labels": "soft"},
    {"cutmix_prob": 0.5, "cutmix_beta": 1.0, "dsa_strategy": "color_crop"},
]


@pytest.mark.parametrize("stored", STORED)
def test_stored_hints_parse_and_round_trip(stored):
    hints = EvalHints.from_dict(stored)
    assert hints.to_dict() == stored
    assert EvalHints.from_dict(hints.to_dict()) == hints
    assert isinstance(hints.fields, ReplayHints if "protocol" in stored else SGDHints)


def test_the_default_is_plain_sgd_and_stores_nothing():
    assert EvalHints() == EvalHints.from_dict(None) == EvalHints.from_dict({}) == EvalHints("sgd", SGDHints())
    assert EvalHints().to_dict() == {} and EvalHints().get_protocol() is EVAL_PROTOCOLS.get("sgd")
    assert EvalHints.build("replay", steps=1, epochs=1, init="key").fields.held_out is None
    assert EvalHints.from_dict({"protocol": "replay", **STORED[2]}).fields.held_out == (2,)


@pytest.mark.parametrize(("data", "message"), [
    ({"protocol": "replai", "steps": 1}, r"unknown evaluation protocol 'replai'. Did you mean 'replay'\?"),
    ({"cutmix_prob": 0.5, "cutmix": 1}, r"protocol 'sgd' has no field 'cutmix'.*Its fields: cutmix_prob"),
    ({"protocol": "replay", "steps": 1, "init": "key"}, "protocol 'replay' needs epochs"),
    ({"protocol": "replay", "steps": "two", "epochs": 1, "init": "key"}, "evaluation.steps must be a whole number"),
    ({"protocol": "replay", "steps": 1, "epochs": 1, "init": "key", "held_out": 3}, "evaluation.held_out must be a list"),
    ({"protocol": "replay", "steps": 1, "epochs": 1, "init": "key", "relabel": [1]}, "evaluation.relabel must be a list of 2"),
    ({"protocol": "replay", "steps": 1, "epochs": 1, "init": "lucky"}, "init must be one of fixed, random, pool, key"),
    ({"protocol": "replay", "steps": 1, "epochs": 1, "init": "fixed", "model": "lenet"}, "needs init_seed"),
    ({"protocol": "replay", "steps": 0, "epochs": 1, "init": "key"}, "steps >= 1"),
    ({"dsa_strategy": 3}, "evaluation.dsa_strategy must be text"),
])
def test_bad_hints_are_refused_with_what_is_wrong(data, message):
    with pytest.raises(ArtifactError, match=message) as caught:
        EvalHints.from_dict(data, where="x.safetensors")
    assert str(caught.value).startswith("x.safetensors: ")


def test_hints_built_in_code_are_checked_too():
    with pytest.raises(UnknownNameError, match="unknown evaluation protocol 'nope'"):
        EvalHints("nope")
    with pytest.raises(ConfigError, match="takes ReplayHints fields; got SGDHints"):
        EvalHints("replay", SGDHints())
    with pytest.raises(ConfigError, match="protocol 'replay' needs its fields"):
        EvalHints("replay")
    with pytest.raises(ConfigError, match="no field 'stpes'"):
        EvalHints.build("replay", stpes=1)


def test_sgd_plans_fresh_models_with_the_sets_requests():
    spec = dataset_spec("digits")
    hints = EvalHints.from_dict(STORED[-1])
    plan = hints.get_protocol().plan(hints, spec, EvalConfig(models=("mlp",), runs=2, epochs=3), models=None, seed=0,
                                     key=None)
    assert (plan.models, plan.runs, plan.steps, plan.init) == (("mlp",), 2, None, None)
    assert (plan.settings.cutmix_prob, plan.settings.dsa_strategy, plan.settings.epochs) == (0.5, "color_crop", 3)
    assert EvalHints().get_protocol().fresh_models and not EVAL_PROTOCOLS.get("replay").fresh_models


def test_replay_plans_the_networks_the_set_was_made_for():
    spec = dataset_spec("digits")
    fixed = EvalHints.from_dict({**STORED[0], "model": "mlp"})
    plan = fixed.get_protocol().plan(fixed, spec, EvalConfig(runs=3), models=None, seed=0, key=None)
    assert (plan.models, plan.runs, plan.steps) == (("mlp",), 1, 2)
    rebuilt, again = plan.init("mlp", 0), seeded_network("mlp", spec.shape, 10, 5, "xavier")
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.parameters(), again.parameters(), strict=True))
    keyed = EvalHints.from_dict(STORED[4])
    with pytest.raises(MismatchError, match="pass the key"):
        keyed.get_protocol().plan(keyed, spec, EvalConfig(), models=None, seed=0, key=None)
    protocol = keyed.get_protocol()
    assert isinstance(protocol, ReplayProtocol)
    names, runs, _ = protocol.networks(keyed, spec, models=None, runs=3, seed=0, key=TargetKey("mlp", 7))
    assert (names, runs) == (("mlp",), 1)
    assert protocol.held_out_networks(keyed, spec) is None and EvalHints().get_protocol().held_out_networks(
        EvalHints(), spec) is None
