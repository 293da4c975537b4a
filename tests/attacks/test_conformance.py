"""Conformance battery: every registered attack passes the same checks.

The attacks are taken from ``ATTACKS.names()`` when this file is collected, so a new
attack is tested as soon as it registers. Each is checked for:

- its registered name is its ``name``; its docstring has a one-line summary, a
  ``Threat model:`` paragraph and a ``Paper:`` citation;
- its ``Params`` is a frozen dataclass whose defaults construct, and ``parse_params``
  refuses unknown settings, values of the wrong type and the out-of-range values in
  ``BAD`` with a :class:`ConfigError` (so does the constructor);
- a run on a tiny target (``TARGETS``: the offline ``digits`` data or a few tensors, tiny
  models, a few steps) returns the result type its ``run`` declares, whose ``to_dict()``
  is JSON-serialisable and whose ``summary`` is one line; the same settings and target
  give the same result.

A new attack adds a ``TARGETS`` entry (a function of a scratch folder returning quick
settings and a target) and, if it has settings, a ``BAD`` entry. Without them its tests
fail; nothing here is skipped but DeepFool's run without foolbox.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from securedd.attacks import ATTACKS, Attack, AttackResult
from securedd.config import RunConfig, apply_overrides
from securedd.data import load_dataset
from securedd.data.spec import RealData
from securedd.distill.synthetic import class_labels
from securedd.errors import ConfigError
from securedd.models import create_model
from securedd.training import TrainSettings, train_model

ALL = ATTACKS.names()


def _digits() -> tuple[RealData, RealData]:
    train = load_dataset("digits", "train")
    return train, load_dataset("digits", "test", spec=train.spec)


def _mlp(data: RealData, seed: int) -> torch.nn.Module:
    return create_model("mlp", data.spec.shape, data.spec.num_classes, generator=torch.Generator().manual_seed(seed))


def _dc(*extra: str) -> RunConfig:
    return apply_overrides(RunConfig(), ["data.name=digits", "method.name=dc", "method.ipc=1", "seed=0",
                                         "method.compile=false", *extra])


def _leakage(scratch: Path) -> tuple[dict[str, Any], Any]:
    from securedd.attacks.leakage import LeakageTarget

    train, _ = _digits()
    shard = train.subset(torch.arange(0, len(train), 3))
    sent = torch.randn((10, *shard.spec.shape), generator=torch.Generator().manual_seed(1))
    cfg = _dc("model=mlp", "method.outer_loop=1", "method.batch_real=1")
    return {"iterations": 2, "inner": 4}, LeakageTarget(cfg, shard, sent, class_labels(10, 1))


def _doorping(scratch: Path) -> tuple[dict[str, Any], Any]:
    from securedd.attacks.doorping import DoorpingTarget
    from securedd.federated.settings import FederationSettings

    _, test = _digits()
    cfg = _dc("model=convnet_tiny", "method.outer_loop=1", "method.inner_loop=1", "method.batch_real=16")
    settings = FederationSettings(cfg, clients=2, rounds=1, out=str(scratch / "fed.safetensors"), progress=False)
    return ({"malicious": 1, "rate": 0.05, "steps": 5, "models": 1, "model": "convnet_tiny", "epochs": 2},
            DoorpingTarget(settings, test.subset(torch.arange(100))))


def _membership(pipeline: bool) -> Any:
    from securedd.attacks.membership import MembershipTarget

    train, test = _digits()
    data = RealData(torch.cat([train.images[:30], test.images[:30]]), torch.cat([train.labels[:30], test.labels[:30]]),
                    train.spec)
    members = torch.arange(60) < 30

    def fit(half: RealData, seed: int) -> torch.nn.Module:
        gen = torch.Generator().manual_seed(100 + seed)
        model = create_model("mlp", half.spec.shape, 10, generator=gen)
        return train_model(model, half.images, half.labels, TrainSettings(epochs=2, batch_size=16), gen)

    model = fit(data.subset(torch.nonzero(members).flatten()), -1)
    return MembershipTarget(model, data, members, fit if pipeline else None)


def _deepfool(scratch: Path) -> tuple[dict[str, Any], Any]:
    from securedd.attacks.robustness import RobustnessTarget

    pytest.importorskip("foolbox")
    _, test = _digits()
    return {"steps": 3, "epsilons": "0,0.1"}, RobustnessTarget(_mlp(test, 0), test.subset(torch.arange(12)))


def _key_search(scratch: Path) -> tuple[dict[str, Any], Any]:
    from securedd.api import distill
    from securedd.attacks.key_search import KeySearchTarget
    from securedd.secure.keys import load_key

    train, test = _digits()
    cfg = apply_overrides(RunConfig(), [
        "method.name=secdd", "data.name=digits", "model=convnet_tiny", "method.ipc=1", "method.iterations=2",
        "method.batch_real=32", f"method.key='{scratch / 'target.key'}'", "method.mode=learn", "seed=2"])
    art = distill(cfg, real=train, progress=False)
    return ({"budget": 2, "models": "mlp,convnet_tiny", "schemes": "xavier"},
            KeySearchTarget(art, test, train, load_key(scratch / "target.key")))


def _intercept(scratch: Path) -> tuple[dict[str, Any], Any]:
    from securedd.attacks.intercept import InterceptTarget

    settings, target = _key_search(scratch)
    validation = target.train.subset(torch.arange(50))
    return ({"models": "mlp", "protocols": "plain", "lrs": "0.01,0.1", "epochs": 3},
            InterceptTarget(target.artifact, validation, target.test, target.true_key))


def _finetune(scratch: Path) -> tuple[dict[str, Any], Any]:
    from securedd.attacks.intercept import FinetuneTarget

    _, target = _intercept(scratch)
    public = target.validation.subset(torch.arange(40))  # stands in for another task's images of the same shape
    return ({"models": "convnet_tiny", "protocols": "plain", "lrs": "0.01", "epochs": 2, "pretrain_epochs": 1},
            FinetuneTarget(target.artifact, target.validation, target.test, target.true_key, public=public))


def _kd(scratch: Path) -> tuple[dict[str, Any], Any]:
    settings, target = _finetune(scratch)
    return ({"models": "mlp", "protocols": "plain", "lrs": "0.01", "epochs": 2, "student": "mlp",
             "student_epochs": 1}, target)


def _poisoning(scratch: Path) -> tuple[dict[str, Any], Any]:
    from securedd.api import distill
    from securedd.attacks.poisoning import PoisoningTarget
    from securedd.training.pool import train_pool

    train, test = _digits()
    pool = train_pool("convnet_tiny", train, scratch / "pool", count=2, epochs=1, lr=0.05, batch_size=64,
                      progress=False)
    cfg = apply_overrides(RunConfig(), [
        "data.name=digits", "model=convnet_tiny", "method.name=dd", "method.ipc=1", "method.steps=1",
        "method.epochs=1", "method.iterations=1", "method.init=pool", f"method.pool='{pool}'", "method.held_out=1",
        "method.relabel='0:1'", "method.batch_real=32", "seed=1"])
    return {"seed": 3}, PoisoningTarget(distill(cfg, real=train, progress=False), test, train)


TARGETS: dict[str, Callable[[Path], tuple[dict[str, Any], Any]]] = {
    "leakage": _leakage,
    "doorping": _doorping,
    "loss-threshold": lambda scratch: ({}, _membership(pipeline=False)),
    "lira": lambda scratch: ({"shadows": 2}, _membership(pipeline=True)),
    "deepfool": _deepfool,
    "key-search": _key_search,
    "train-on-intercept": _intercept,
    "pretrained-finetune": _finetune,
    "kd-from-labels": _kd,
    "poisoning": _poisoning,
}

BAD: dict[str, list[dict[str, Any]]] = {
    "leakage": [{"iterations": 0}, {"lr": -1}],
    "doorping": [{"malicious": 0}, {"rate": 2}, {"model": "no-such-model"}, {"epochs": 0}],
    "lira": [{"shadows": 1}, {"shift": -1}],
    "deepfool": [{"norm": "l1"}, {"epsilons": "-0.1,0.2"}, {"steps": 0}],
    "key-search": [{"budget": 0}, {"schemes": "no-such-scheme"}, {"models": "no-such-model"}],
    "poisoning": [],
    "train-on-intercept": [{"protocols": "replay"}, {"labels": "none"}, {"optimizers": "lbfgs"}, {"lrs": "0"},
                           {"models": "no-such-model"}, {"epochs": 0}],
    "pretrained-finetune": [{"pretrain_epochs": 0}, {"pretrain_lr": 0}, {"lrs": "-1"}],
    "kd-from-labels": [{"student": "no-such-model"}, {"student_epochs": 0}, {"temperature": 0}],
}


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[dict[str, Any], Any]]:
    """``attack -> (quick settings, tiny target)`` from TARGETS, prepared once per attack per test run."""
    done: dict[str, tuple[dict[str, Any], Any]] = {}

    def get(name: str) -> tuple[dict[str, Any], Any]:
        if name not in done:
            if name not in TARGETS:
                pytest.fail(f"attack '{name}' has no TARGETS entry in {__file__}")
            done[name] = TARGETS[name](tmp_path_factory.mktemp(f"attack-{name}"))
        return done[name]

    return get


@pytest.mark.parametrize("name", ALL)
def test_the_registered_name_is_the_attacks_name(name: str) -> None:
    cls = ATTACKS.get(name)
    assert issubclass(cls, Attack) and cls.name == name


@pytest.mark.parametrize("name", ALL)
def test_the_docstring_gives_a_summary_the_threat_model_and_the_paper(name: str) -> None:
    doc = ATTACKS.get(name).__doc__ or ""
    paragraphs = [p.strip() for p in doc.strip().split("\n\n")]
    assert ATTACKS.describe(name) and "\n" not in paragraphs[0]
    threat = [p for p in paragraphs if p.startswith("Threat model:")]
    assert threat and len(threat[0]) > 120, f"{name}: say who knows what under 'Threat model:'"
    assert any(p.startswith("Paper:") for p in paragraphs), f"{name}: cite its paper under 'Paper:'"


@pytest.mark.parametrize("name", ALL)
def test_params_are_a_frozen_dataclass_whose_defaults_construct(name: str) -> None:
    cls = ATTACKS.get(name)
    assert dataclasses.is_dataclass(cls.Params) and cls.Params.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert cls.parse_params({}) == cls.Params() == cls().params
    assert set(cls.settings()) == {f.name for f in dataclasses.fields(cls.Params)}
    fields = dataclasses.fields(cls.Params)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cls().params, fields[0].name, None)


@pytest.mark.parametrize("name", ALL)
def test_unknown_settings_are_refused(name: str) -> None:
    cls = ATTACKS.get(name)
    with pytest.raises(ConfigError, match="no setting 'no_such_setting'"):
        cls.parse_params({"no_such_setting": 1})
    with pytest.raises(ConfigError, match="no setting"):
        cls(no_such_setting=1)
    with pytest.raises(ConfigError, match="either"):
        cls(cls.Params(), no_such_setting=1)


def _checked_type(hint: Any) -> bool:
    """Settings of these types must refuse a word: numbers, flags, tuples of numbers (optional or not)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
    inner = args[0] if len(args) == 1 else None
    if typing.get_origin(inner) is tuple:
        inner = typing.get_args(inner)[0]
    return inner in (int, float, bool)


@pytest.mark.parametrize("name", ALL)
def test_bad_values_are_refused_with_a_config_error(name: str) -> None:
    cls = ATTACKS.get(name)
    hints = typing.get_type_hints(cls.Params)
    for key, hint in hints.items():
        if _checked_type(hint):
            with pytest.raises(ConfigError, match=key):
                cls.parse_params({key: "not-a-number"})
    assert name in BAD or not hints, f"attack '{name}' has settings: add its out-of-range values to BAD"
    for values in BAD.get(name, []):
        with pytest.raises(ConfigError):
            cls.parse_params(values)
        with pytest.raises(ConfigError):
            cls(**values)


@pytest.mark.parametrize("name", ALL)
def test_a_run_returns_its_typed_result_as_json_and_repeats_with_the_same_seed(name: str, prepared) -> None:
    torch.set_num_threads(1)
    settings, target = prepared(name)
    cls = ATTACKS.get(name)
    attack = cls(**settings)
    assert repr(attack).startswith(type(attack).__name__)
    result = attack(target)
    declared = typing.get_type_hints(cls.run)["return"]
    assert isinstance(result, declared) and isinstance(result, AttackResult) and declared is not AttackResult
    first = json.dumps(_untimed(result.to_dict()), sort_keys=True)
    assert isinstance(result.summary, str) and result.summary and "\n" not in result.summary
    again = cls(cls.parse_params({k: str(v) for k, v in settings.items()})).run(target)  # command-line strings
    assert json.dumps(_untimed(again.to_dict()), sort_keys=True) == first


def _untimed(report: dict) -> dict:
    """``report`` without its wall-clock measurements (``seconds...`` keys, which must be numbers):
    everything else repeats with the same seed."""
    for key, value in report.items():
        if key.startswith("seconds"):
            assert value is None or isinstance(value, float | int), f"{key} is a timing, not {value!r}"
    return {k: v for k, v in report.items() if not k.startswith("seconds")}
