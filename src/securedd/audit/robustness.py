"""Adversarial accuracy under DeepFool (foolbox) over a sweep of perturbation budgets.

DeepFool looks for the smallest perturbation that moves an image across the nearest
decision boundary; an image counts as robust at budget ``eps`` when the model classifies
it correctly and the perturbation DeepFool needs is larger than ``eps``. Budgets are in
pixel space, with pixels in [0, 1] (L-infinity by default, or L2), so they mean the same
for every dataset spec: the model is wrapped to normalise its [0, 1] input itself.

foolbox is in the ``[audit]`` extra (``pip install 'securedd[audit]'``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from securedd.data.spec import DatasetSpec, RealData
from securedd.errors import ConfigError

__all__ = ["DEFAULT_EPSILONS", "NORMS", "check_budgets", "deepfool_accuracy", "require_foolbox"]

NORMS = ("linf", "l2")
DEFAULT_EPSILONS = {"linf": (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3),
                    "l2": (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)}


class _Normalised(nn.Module):
    """``model(spec.normalize(pixels))``: the model on [0, 1] pixels."""

    def __init__(self, model: nn.Module, spec: DatasetSpec) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels - self.mean) / self.std)


def check_budgets(norm: str, epsilons: Sequence[float]) -> list[float]:
    """``epsilons`` as floats; ConfigError for an unknown ``norm`` or a negative or missing budget."""
    if norm not in NORMS:
        raise ConfigError(f"unknown DeepFool norm '{norm}'; choose from {', '.join(NORMS)}")
    eps = [float(e) for e in epsilons]
    if not eps or min(eps) < 0:
        raise ConfigError(f"DeepFool budgets must be a non-empty list of numbers >= 0; got {list(epsilons)}")
    return eps


def require_foolbox():
    try:
        import foolbox
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigError("the robustness stage needs foolbox: pip install 'securedd[audit]' "
                          "(or leave 'robustness' out of --stages)") from err
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
