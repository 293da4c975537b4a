"""What an audit runs (:class:`AuditConfig`) and what its stages share (:class:`AuditContext`).

The context trains the expensive networks once, when a stage first asks: the full-data
reference (a ConvNet-3 on the whole training split), the ConvNet-3 trained on the set
that the privacy and robustness stages attack, and the utility evaluation that the
fairness stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from securedd.api import evaluate
from securedd.artifacts import Artifact
from securedd.attacks.key_search import fitting_models
from securedd.attacks.robustness import DEFAULT_EPSILONS, check_budgets
from securedd.config import EvalConfig
from securedd.data.spec import RealData
from securedd.errors import ConfigError
from securedd.evaluation.protocols import fresh_model
from securedd.evaluation.train_eval import EvalReport
from securedd.models import create_model
from securedd.rng import make_generator
from securedd.training import ModelScore, TrainSettings, score_model, train_model

__all__ = ["DEFAULT_MODELS", "STAGES", "AuditConfig", "AuditContext"]

STAGES = ("utility", "privacy", "robustness", "memorisation", "fairness")
"""The registered stages, in the order the default audit runs them."""
DEFAULT_MODELS = ("convnet", "resnet18", "vgg16", "alexnet", "lenet", "mlp")


@dataclass(frozen=True)
class AuditConfig:
    """What the audit runs.

    The defaults fit an MNIST/CIFAR-sized IPC 10 audit into half an hour on two CPU cores:
    every network is trained on the set for ``epochs=200`` epochs with DSA (the full
    evaluation protocol's 1000, or ``None`` for the protocol's default, is slower but
    closer to published accuracies), ``runs=2`` networks per architecture.
    """

    stages: tuple[str, ...] = STAGES
    models: tuple[str, ...] = DEFAULT_MODELS
    runs: int = 2
    epochs: int | None = 200
    dsa: bool = True
    reference_epochs: int = 1
    reference_min_steps: int = 200
    mia_samples: int = 2000
    robustness_samples: int = 500
    norm: str = "linf"
    epsilons: tuple[float, ...] | None = None
    near_copy_ssim: float = 0.9
    tsne_points: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        from securedd.audit.stages import AUDIT_STAGES  # the registry's module imports this one

        unknown = [s for s in self.stages if s not in AUDIT_STAGES.names()]
        if unknown:
            raise ConfigError(f"unknown audit stage(s) {', '.join(unknown)}; choose from "
                              f"{', '.join(AUDIT_STAGES.names())}")
        if self.runs < 1 or self.mia_samples < 10:
            raise ConfigError(f"the audit needs runs >= 1 and mia_samples >= 10; got {self.runs}, {self.mia_samples}")
        if self.robustness_samples < 1:
            raise ConfigError(f"robustness_samples must be >= 1; got {self.robustness_samples}")
        check_budgets(self.norm, self.budgets)

    @property
    def budgets(self) -> tuple[float, ...]:
        """The DeepFool budgets: ``epsilons``, or the norm's default sweep."""
        return tuple(self.epsilons) if self.epsilons is not None else DEFAULT_EPSILONS.get(self.norm, ())


class AuditContext:
    """The artifact, the real splits and the networks the stages share, each trained on first use."""

    def __init__(self, art: Artifact, config: AuditConfig, train: RealData, test: RealData, *,
                 progress: bool = False) -> None:
        self.art, self.config, self.train, self.test, self.progress = art, config, train, test, progress
        self.utility: EvalReport | None = None
        """The utility stage's evaluation, once it ran."""

    @cached_property
    def reference(self) -> tuple[torch.nn.Module, ModelScore]:
        """ConvNet-3 trained on the whole training split, and its test score: the full-data reference.

        ``reference_epochs`` epochs, or more on a small dataset, so that it takes at least
        ``reference_min_steps`` SGD steps (batches of 256).
        """
        cfg, train = self.config, self.train
        gen = make_generator(cfg.seed, "audit", "reference")
        model = create_model("convnet", train.spec.shape, train.spec.num_classes, generator=gen)
        batches = -(-len(train) // 256)
        epochs = max(cfg.reference_epochs, -(-cfg.reference_min_steps // batches))  # small datasets: enough steps
        train_model(model, train.images, train.labels, TrainSettings(epochs=epochs, batch_size=256), gen)
        return model, score_model(model, self.test)

    @cached_property
    def set_model(self) -> torch.nn.Module:
        """A ConvNet-3 trained on the set as its evaluation protocol says (``epochs``, ``dsa``)."""
        cfg = self.config
        return fresh_model(self.art, "convnet", EvalConfig(epochs=cfg.epochs, dsa=cfg.dsa),
                           make_generator(cfg.seed, "audit", "set-model"), "the audit")

    def evaluate(self, models: list[str]) -> EvalReport:
        """``runs`` fresh models of each of ``models`` trained on the set and tested."""
        cfg = self.config
        return evaluate(self.art, models=models, runs=cfg.runs, epochs=cfg.epochs, dsa=cfg.dsa, test=self.test,
                        seed=cfg.seed, progress=self.progress)

    def fitting(self) -> list[str]:
        """The configured architectures that fit the set's images."""
        return [m for m in self.config.models if m in fitting_models(self.art)]
