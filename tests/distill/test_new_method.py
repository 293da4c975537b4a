"""A new method in one file: its class, its evaluation hints and, here, its own evaluation protocol.

Adding a method touches at most three files: the method's module (registered with
``METHODS``), optionally its presets (``presets/<name>.toml``) and its tests. How its sets
are evaluated is part of the method (:meth:`Method.eval_hints`); a new way of evaluating
is one more registered :class:`EvalProtocol`. This file is both: the method and the
protocol live here, and nothing else in the package changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
import torch

from securedd.api import distill, evaluate
from securedd.artifacts import load_artifact
from securedd.config import EvalConfig, RunConfig, apply_overrides
from securedd.data.spec import DatasetSpec
from securedd.distill import METHODS, Method, SyntheticSet
from securedd.distill.synthetic import class_labels
from securedd.evaluation.protocols import EVAL_PROTOCOLS, EvalHints, EvalPlan, SGDHints, SGDProtocol
from securedd.secure.keys import TargetKey


@dataclass(frozen=True)
class MeanMatchParams:
    """Step size of the image updates and real images per class per iteration."""

    lr: float = 0.5
    batch_real: int = 16


class MeanMatchMethod(Method):
    """Learn images whose class means match the real class means (pixel space)."""

    name = "meanmatch"
    Params = MeanMatchParams
    default_iterations = 3

    def init_synthetic(self) -> SyntheticSet:
        ctx = self.ctx
        shape = (ctx.spec.num_classes * ctx.ipc, *ctx.spec.shape)
        images = torch.randn(shape, generator=ctx.generator("init"), device=ctx.device).requires_grad_(True)
        return SyntheticSet(images, class_labels(ctx.spec.num_classes, ctx.ipc, ctx.device))

    def optimizer(self, syn: SyntheticSet) -> torch.optim.Optimizer:
        return torch.optim.SGD([syn.images], lr=self.params.lr)

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        ctx, k = self.ctx, self.ctx.spec.num_classes
        real = torch.stack([ctx.sampler.sample(c, self.params.batch_real).mean(0) for c in range(k)])
        yield ((syn.images.view(k, ctx.ipc, -1).mean(1) - real.flatten(1)) ** 2).sum()

    def eval_hints(self) -> EvalHints:
        return EvalHints("sgd", SGDHints(cutmix_prob=0.25, cutmix_beta=2.0))


@dataclass(frozen=True)
class ShortHints:
    """The epochs a set was made to be trained for."""

    epochs: int


class ShortProtocol(SGDProtocol):
    """SGD for exactly the epochs the set asks for, unless the evaluation sets them."""

    Hints = ShortHints

    def plan(self, hints: EvalHints, spec: DatasetSpec, cfg: EvalConfig, *, models: Sequence[str] | None,
             seed: int, key: TargetKey | None) -> EvalPlan:
        plan = super().plan(EvalHints(), spec, cfg, models=models, seed=seed, key=key)
        epochs = cfg.epochs if cfg.epochs is not None else hints.fields.epochs
        return dataclasses.replace(plan, settings=dataclasses.replace(plan.settings, epochs=epochs))


class ShortMeanMatchMethod(MeanMatchMethod):
    """MeanMatch, whose sets ask for two epochs of training."""

    name = "meanmatch_short"

    def eval_hints(self) -> EvalHints:
        return EvalHints("short", ShortHints(epochs=2))


@pytest.fixture
def registered():
    METHODS.register("meanmatch")(MeanMatchMethod)
    METHODS.register("meanmatch_short")(ShortMeanMatchMethod)
    EVAL_PROTOCOLS.register("short")(ShortProtocol())
    yield
    METHODS.unregister("meanmatch")
    METHODS.unregister("meanmatch_short")
    EVAL_PROTOCOLS.unregister("short")


def _cfg(method: str) -> RunConfig:
    return apply_overrides(RunConfig(), [f"method.name={method}", "method.ipc=1", "model=convnet_tiny", "seed=2"])


def test_a_new_method_distils_stores_its_hints_and_is_evaluated_by_them(registered, digits_train, digits_test,
                                                                         tmp_path):
    art = distill(_cfg("meanmatch"), out=tmp_path / "m.safetensors", real=digits_train, progress=False)
    assert art.images.shape == (10, 1, 8, 8) and art.metadata["info"]["iterations"] == 3
    assert load_artifact(art.path).metadata["evaluation"] == {"cutmix_prob": 0.25, "cutmix_beta": 2.0}
    report = evaluate(art.path, models=["mlp"], runs=1, epochs=2, test=digits_test, progress=False)
    assert report.protocol["cutmix_prob"] == 0.25 and report.protocol["cutmix_beta"] == 2.0
    assert report.protocol["epochs"] == 2 and 0 <= report.archs[0].mean <= 100


def test_a_new_protocol_is_one_registration(registered, digits_train, digits_test, tmp_path):
    art = distill(_cfg("meanmatch_short"), out=tmp_path / "s.safetensors", real=digits_train, progress=False)
    assert art.metadata["evaluation"] == {"protocol": "short", "epochs": 2}
    report = evaluate(art.path, models=["mlp"], runs=1, test=digits_test, progress=False)
    assert report.protocol["epochs"] == 2  # the set's own request, not the protocol default of 1000
    assert evaluate(art, models=["mlp"], runs=1, epochs=1, test=digits_test, progress=False).protocol["epochs"] == 1
