"""Adversarial accuracy under DeepFool (foolbox) over a sweep of perturbation budgets.

DeepFool looks for the smallest perturbation that moves an image across the nearest
decision boundary; an image counts as robust at budget ``eps`` when the model classifies
it correctly and the perturbation DeepFool needs is larger than ``eps``. Budgets are in
pixel space, with pixels in [0, 1] (L-infinity by default, or L2), so they mean the same
for every dataset spec: the model is wrapped to normalise its [0, 1] input itself.

foolbox is in the ``[audit]`` extra (``pip install 'securedd[audit]'``). The attack:
:class:`DeepFool` (``deepfool``) on a :class:`RobustnessTarget`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from securedd.attacks.base import ATTACKS, Attack, AttackResult
from securedd.data.spec import DatasetSpec, RealData
from securedd.errors import ConfigError

__all__ = ["DEFAULT_EPSILONS", "NORMS", "DeepFool", "DeepFoolParams", "RobustnessResult", "RobustnessTarget",
           "check_budgets", "deepfool_accuracy", "require_foolbox"]

NORMS = ("linf", "l2")
DEFAULT_EPSILONS = {"linf": (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3),
                    "l2": (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)}


class _Normalised(nn.Module):
    """``model(spec.normalize(pixels))``: the model on [0, 1] pixels."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, spec: DatasetSpec) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model((pixels - self.mean) / self.std)
        return logits


def check_budgets(norm: str, epsilons: Sequence[float]) -> list[float]:
    """``epsilons`` as floats; ConfigError for an unknown ``norm`` or a negative or missing budget."""
    if norm not in NORMS:
        raise ConfigError(f"unknown DeepFool norm '{norm}'; choose from {', '.join(NORMS)}")
    eps = [float(e) for e in epsilons]
    if not eps or min(eps) < 0:
        raise ConfigError(f"DeepFool budgets must be a non-empty list of numbers >= 0; got {list(epsilons)}")
    return eps


def require_foolbox() -> Any:
    """The ``foolbox`` module; ConfigError with the install command when it is missing."""
    try:
        import foolbox
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigError("DeepFool needs foolbox: pip install 'securedd[audit]' (in securedd audit, or leave "
                          "'robustness' out of --stages)") from err
    return foolbox


def deepfool_accuracy(model: nn.Module, data: RealData, epsilons: Sequence[float], *, norm: str = "linf",
                      steps: int = 50, overshoot: float = 0.02, batch: int | None = None) -> np.ndarray:
    """Accuracy (%) of ``model`` on ``data`` under DeepFool, one value per budget in ``epsilons``.

    The first budget is usually 0: the clean accuracy. Budgets must be non-negative and
    are applied to pixels in [0, 1] under ``norm`` (``linf`` or ``l2``). The attack steps a
    whole batch until every image in it is adversarial, so one hard image keeps its batch
    busy for up to ``steps`` steps: on a CPU small batches (10 by default) waste less.
    Each image's result does not depend on the batch.
    """
    eps = check_budgets(norm, epsilons)
    batch = batch or (10 if data.images.device.type == "cpu" else 500)
    fb = require_foolbox()
    wrapped = _Normalised(model, data.spec).eval()
    fmodel = fb.PyTorchModel(wrapped, bounds=(0.0, 1.0))
    attack = (fb.attacks.LinfDeepFoolAttack if norm == "linf" else fb.attacks.L2DeepFoolAttack)(
        steps=steps, overshoot=overshoot)
    robust = np.zeros(len(eps))
    for start in range(0, len(data), batch):
        pixels = data.spec.denormalize(data.images[start : start + batch].float()).contiguous()
        labels = data.labels[start : start + batch]
        _, _, success = attack(fmodel, pixels, labels, epsilons=eps)
        robust += (~success).sum(dim=1).cpu().numpy()
    return 100.0 * robust / len(data)


@dataclass(frozen=True)
class RobustnessTarget:
    """A trained model and the labelled test images it is attacked on."""

    model: nn.Module
    data: RealData


@dataclass(frozen=True)
class DeepFoolParams:
    """DeepFool's budgets and its own settings."""

    norm: str = "linf"
    """``linf`` or ``l2``, on pixels in [0, 1]."""
    epsilons: tuple[float, ...] | None = None
    """The budgets swept (None: the norm's default sweep, :data:`DEFAULT_EPSILONS`)."""
    steps: int = 50
    """DeepFool iterations at most."""
    overshoot: float = 0.02
    batch: int | None = None
    """Images per attacked batch (None: 10 on a CPU, 500 on an accelerator)."""

    def __post_init__(self) -> None:
        check_budgets(self.norm, self.budgets)
        if self.steps < 1 or self.overshoot < 0 or (self.batch is not None and self.batch < 1):
            raise ConfigError(f"DeepFool needs steps >= 1, overshoot >= 0 and batch >= 1; got steps={self.steps}, "
                              f"overshoot={self.overshoot}, batch={self.batch}")

    @property
    def budgets(self) -> tuple[float, ...]:
        """``epsilons``, or the norm's default sweep."""
        return tuple(self.epsilons) if self.epsilons is not None else DEFAULT_EPSILONS.get(self.norm, ())


@dataclass
class RobustnessResult(AttackResult):
    """Accuracy (%) under DeepFool at each budget; the first budget is usually 0, the clean accuracy."""

    norm: str
    epsilons: list[float]
    accuracy: list[float]
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return {"attack": "DeepFool (foolbox)", "norm": self.norm, "samples": self.samples,
                "epsilons": self.epsilons, "accuracy": [round(a, 2) for a in self.accuracy]}

    @property
    def summary(self) -> str:
        pairs = ", ".join(f"{e:g}: {a:.1f}%" for e, a in zip(self.epsilons, self.accuracy, strict=True))
        return f"accuracy under DeepFool ({self.norm}, {self.samples} images) by budget: {pairs}"


@ATTACKS.register("deepfool")
class DeepFool(Attack[RobustnessTarget, RobustnessResult]):
    """Evasion by the smallest perturbation that crosses the nearest decision boundary (DeepFool).

    Threat model: white box. The attacker has the trained model's weights and gradients
    and perturbs each test image within a budget (L-infinity or L2 on pixels in [0, 1]) to
    change its predicted class; it knows nothing of the training data. An image is robust
    at a budget when it is classified correctly and DeepFool needs more than the budget.

    Paper: Moosavi-Dezfooli, Fawzi and Frossard, "DeepFool: a simple and accurate method
    to fool deep neural networks", CVPR 2016 (foolbox's implementation).
    """

    name = "deepfool"
    Params = DeepFoolParams

    def run(self, target: RobustnessTarget, *, progress: bool = False) -> RobustnessResult:
        p: DeepFoolParams = self.params
        accuracy = deepfool_accuracy(target.model, target.data, p.budgets, norm=p.norm, steps=p.steps,
                                     overshoot=p.overshoot, batch=p.batch)
        return RobustnessResult(p.norm, list(p.budgets), [float(a) for a in accuracy], len(target.data))
