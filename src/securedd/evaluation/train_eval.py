"""The evaluation protocol (REFERENCE section 2): train fresh models on a set, test on real data.

SGD (lr 0.01 or the learned lr, momentum 0.9, weight decay 5e-4), batch 256, 1000 epochs
with DSA or 300 without, the lr divided by 10 once at half-way, and one test at the end:
final accuracy only, never the best on test. The training itself lives in
:mod:`securedd.training`; how a distilled set asks to be trained (plain SGD, or a learned
schedule replayed) is its protocol (:mod:`securedd.evaluation.protocols`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from securedd.data.spec import RealData
from securedd.errors import MismatchError
from securedd.evaluation.fairness import class_variance
from securedd.models import create_model
from securedd.rng import make_generator
from securedd.training import ModelScore, TrainSettings, replay_steps, score_model, train_model
from securedd.training.compiled import resolve_compile

__all__ = ["ArchReport", "EvalReport", "evaluate_set"]

log = logging.getLogger(__name__)


@dataclass
class ArchReport:
    """Results of K fresh models of one architecture."""

    model: str
    scores: list[ModelScore] = field(default_factory=list)

    @property
    def accuracies(self) -> list[float]:
        return [s.accuracy for s in self.scores]

    @property
    def mean(self) -> float:
        return float(torch.tensor(self.accuracies, dtype=torch.float64).mean())

    @property
    def std(self) -> float:
        acc = torch.tensor(self.accuracies, dtype=torch.float64)
        return float(acc.std(unbiased=False)) if len(acc) > 1 else 0.0

    @property
    def per_class_accuracy(self) -> torch.Tensor:
        return torch.stack([s.per_class_accuracy for s in self.scores]).mean(0)

    @property
    def per_class_loss(self) -> torch.Tensor:
        return torch.stack([s.per_class_loss for s in self.scores]).mean(0)

    @property
    def seconds_per_model(self) -> float:
        return sum(s.seconds for s in self.scores) / max(len(self.scores), 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "runs": len(self.scores),
            "accuracy_mean": round(self.mean, 4),
            "accuracy_std": round(self.std, 4),
            "accuracies": [round(a, 4) for a in self.accuracies],
            "per_class_accuracy": [round(float(v), 4) for v in self.per_class_accuracy],
            "per_class_loss": [round(float(v), 6) for v in self.per_class_loss],
            "fairness_accuracy_variance": round(class_variance(self.per_class_accuracy), 4),
            "fairness_loss_variance": round(class_variance(self.per_class_loss), 6),
            "seconds_per_model": round(self.seconds_per_model, 2),
        }


@dataclass
class EvalReport:
    """Per-architecture results plus the protocol that produced them.

    ``set_info`` describes the evaluated set when it came from an artifact: its stored
    IPC and, for multi-formation sets, what it decodes to (``summary`` is one line).
    """

    archs: list[ArchReport]
    protocol: dict[str, Any]
    class_names: tuple[str, ...] = ()
    set_info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"protocol": self.protocol, "class_names": list(self.class_names),
               "models": [a.to_dict() for a in self.archs]}
        if self.set_info:
            out["set"] = self.set_info
        return out

    def to_markdown(self) -> str:
        lines = [f"{self.set_info['summary']}", ""] if self.set_info.get("summary") else []
        lines += ["| model | runs | accuracy (%) | fairness var. (acc.) | s / model |", "|---|---|---|---|---|"]
        for a in self.archs:
            d = a.to_dict()
            lines.append(f"| {a.model} | {d['runs']} | {a.mean:.2f} ± {a.std:.2f} | "
                         f"{d['fairness_accuracy_variance']:.2f} | {d['seconds_per_model']:.1f} |")
        return "\n".join(lines)

    def per_class_markdown(self, max_classes: int = 20) -> str:
        """Per-class accuracy (%) and loss of each model, averaged over its runs.

        With more than ``max_classes`` classes only the worst ``max_classes`` by accuracy are shown.
        """
        lines = []
        for a in self.archs:
            acc, loss = a.per_class_accuracy, a.per_class_loss
            order = list(range(len(acc)))
            title = f"per-class results, {a.model}"
            if len(order) > max_classes:
                order = acc.argsort()[:max_classes].tolist()
                title += f" (the {max_classes} worst classes)"
            names = [self.class_names[c] if c < len(self.class_names) else str(c) for c in order]
            lines += [f"{title}:", "| class | " + " | ".join(names) + " |", "|---" * (len(order) + 1) + "|",
                      "| accuracy (%) | " + " | ".join(f"{float(acc[c]):.1f}" for c in order) + " |",
                      "| loss | " + " | ".join(f"{float(loss[c]):.3f}" for c in order) + " |", ""]
        return "\n".join(lines).rstrip()


def _tick(bar: tqdm) -> None:  # type: ignore[type-arg]
    bar.update()


def evaluate_set(
    images: torch.Tensor,
    labels: torch.Tensor,
    test: RealData,
    *,
    models: tuple[str, ...] | list[str] = ("convnet",),
    runs: int = 3,
    settings: TrainSettings = TrainSettings(),
    seed: int = 0,
    lrs: torch.Tensor | None = None,
    steps: int | None = None,
    init: Callable[[str, int], torch.nn.Module] | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> EvalReport:
    """Train ``runs`` fresh models of each architecture on a set and test them.

    Args:
        images: (N, C, H, W) normalised like ``test``.
        labels: (N,) hard or (N, K) soft labels.
        test: the real test split.
        models: architecture names.
        runs: fresh models per architecture (each from its own seeded generator).
        settings: the training protocol; a single learned ``lrs`` value without ``steps``
            (MTT's learned step size) replaces ``settings.lr``.
        lrs, steps: a learned per-step schedule (DD, ``steps`` steps per epoch): replayed
            instead of SGD training.
        init: ``init(name, run)`` builds run ``run``'s model of architecture ``name``
            instead of a fresh default initialisation (DD's fixed or Xavier networks).
    """
    spec = test.spec
    if tuple(images.shape[1:]) != spec.shape:
        raise MismatchError(
            f"the set's images are {tuple(images.shape[1:])} but '{spec.name}' test images are {spec.shape}"
        )
    if lrs is not None and lrs.numel() == 1 and steps is None:
        if float(lrs) < 0:
            raise MismatchError(f"the set's learned learning rate is negative ({float(lrs):.3g}): its distillation "
                                "diverged; distil it again with a smaller learning rate for the step size (lr_lr)")
        settings = dataclasses.replace(settings, lr=float(lrs))
        lrs = None
    images, labels, test = images.to(device), labels.to(device), test.to(device)
    compiled = resolve_compile(settings.compile, images, settings.epochs, runs * len(models))
    settings = dataclasses.replace(settings, compile=compiled)
    archs = []
    # the bar counts epochs over all models, so its estimate of the time left shows from the first epoch
    bar = tqdm(total=len(models) * runs * settings.epochs, desc="evaluate", unit="epoch", disable=not progress)
    for name in models:
        report = ArchReport(name)
        for run in range(runs):
            start = time.perf_counter()
            gen = make_generator(seed, "eval", name, run, device=device)
            if init is not None:
                model = init(name, run).to(device)
            else:
                model = create_model(name, spec.shape, spec.num_classes, generator=gen).to(device)
            if lrs is not None:
                replay_steps(model, images, labels, lrs.to(device), steps or 1, spec.num_classes)
                bar.update(settings.epochs)
            else:
                train_model(model, images, labels, settings, gen, on_epoch=lambda epoch, net: _tick(bar))
            score = score_model(model, test, compile=compiled, precision=settings.precision)
            report.scores.append(ModelScore(score.accuracy, score.loss, score.per_class_accuracy,
                                            score.per_class_loss, time.perf_counter() - start))
            bar.set_postfix(model=f"{name} {run + 1}/{runs}", acc=f"{score.accuracy:.2f}")
            if not math.isfinite(score.loss):
                log.warning("model %s run %d ended with a non-finite test loss", name, run)
        archs.append(report)
    bar.close()
    protocol = {**settings.__dict__, "runs": runs, "seed": seed, "replayed_steps": steps if lrs is not None else None}
    return EvalReport(archs, protocol, spec.class_names)
