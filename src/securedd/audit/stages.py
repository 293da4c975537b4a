"""The audit's stages: each a small registered function of the shared context, returning its section and figure.

A stage (registered in :data:`AUDIT_STAGES`) takes the :class:`AuditContext` and returns
a :class:`StageResult`: its report section, its figures (PNG bytes) and its row of the
summary table (an ``aspect``, a ``metric`` and the distilled set's and the reference's
figures). Every stage compares the set with the full-data reference:

- ``utility``: test accuracy, mean ± std over ``runs`` models of each architecture that
  fits the images.
- ``privacy``: the loss-threshold membership attack (:mod:`securedd.attacks.membership`)
  on the ConvNet-3 trained on the set and on the reference; members are real training
  images, non-members test images, as many of each; ROC on log axes. LiRA needs shadow
  distillations and runs in ``benchmarks/mia.py``.
- ``robustness``: accuracy under foolbox's DeepFool (:mod:`securedd.attacks.robustness`)
  over a sweep of budgets on ``robustness_samples`` test images.
- ``memorisation``: each distilled image's nearest training image and their SSIM
  (:func:`securedd.attacks.key_search.resemblance`), the share of near-copies.
- ``fairness``: per-class accuracy and loss, their variance across classes, per-class
  accuracy over the reference's, and a t-SNE in the reference's feature space.

Adding a stage is one function here with ``@AUDIT_STAGES.register(name)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from securedd.attacks.key_search import resemblance
from securedd.attacks.membership import LossThreshold, MembershipResult, MembershipTarget
from securedd.attacks.robustness import deepfool_accuracy
from securedd.audit import figures
from securedd.audit.context import AuditContext
from securedd.data.spec import RealData
from securedd.evaluation.fairness import class_variance, normalized_per_class
from securedd.registry import Registry
from securedd.rng import make_generator

__all__ = ["AUDIT_STAGES", "StageResult"]


@dataclass
class StageResult:
    """One stage's findings: its report section, its figures and its summary row (``None``: none)."""

    section: dict[str, Any]
    summary: dict[str, Any] | None = None
    figures: dict[str, bytes] = field(default_factory=dict)


Stage = Callable[[AuditContext], StageResult]
AUDIT_STAGES: Registry[Stage] = Registry("audit stage")


@AUDIT_STAGES.register("utility")
def utility(ctx: AuditContext) -> StageResult:
    """Test accuracy of every architecture that fits, trained on the set."""
    fits = ctx.fitting()
    report = ctx.utility = ctx.evaluate(fits)
    _, ref = ctx.reference
    conv = next((a for a in report.archs if a.model == "convnet"), report.archs[0])
    section = {"models": [a.to_dict() for a in report.archs],
               "skipped": [m for m in ctx.config.models if m not in fits], "reference_accuracy": round(ref.accuracy, 2)}
    return StageResult(section, {"aspect": "utility", "metric": f"test accuracy, {conv.model} (%)",
                                 "distilled": f"{conv.mean:.2f} ± {conv.std:.2f}"})


def _membership(model: torch.nn.Module, train: RealData, test: RealData, n: int, seed: int) -> MembershipResult:
    gen = make_generator(seed, "audit", "mia")
    n = min(n, len(train), len(test))
    members = train.subset(torch.randperm(len(train), generator=gen)[:n])
    others = test.subset(torch.randperm(len(test), generator=gen)[:n])
    both = RealData(torch.cat([members.images, others.images]), torch.cat([members.labels, others.labels]), train.spec)
    return LossThreshold()(MembershipTarget(model, both, np.r_[np.ones(n, bool), np.zeros(n, bool)]))


@AUDIT_STAGES.register("privacy")
def privacy(ctx: AuditContext) -> StageResult:
    """The loss-threshold membership attack on the set's network and on the reference."""
    cfg, (reference, _) = ctx.config, ctx.reference
    attack = _membership(ctx.set_model, ctx.train, ctx.test, cfg.mia_samples, cfg.seed)
    base = _membership(reference, ctx.train, ctx.test, cfg.mia_samples, cfg.seed)
    roc = figures.roc_figure({"trained on the distilled set": attack, "full-data reference": base})
    return StageResult({"distilled": attack.to_dict(), "reference": base.to_dict()},
                       {"aspect": "privacy", "metric": "membership AUC, loss threshold", "distilled": round(attack.auc, 4),
                        "reference": round(base.auc, 4)}, {"roc": roc})


@AUDIT_STAGES.register("robustness")
def robustness(ctx: AuditContext) -> StageResult:
    """Accuracy under DeepFool over the budgets, for the set's network and the reference."""
    cfg, (reference, _) = ctx.config, ctx.reference
    gen = make_generator(cfg.seed, "audit", "robustness")
    sample = ctx.test.subset(torch.randperm(len(ctx.test), generator=gen)[: cfg.robustness_samples])
    budgets = cfg.budgets
    curves = {"trained on the distilled set": deepfool_accuracy(ctx.set_model, sample, budgets, norm=cfg.norm),
              "full-data reference": deepfool_accuracy(reference, sample, budgets, norm=cfg.norm)}
    distilled, full = curves.values()
    mid = len(budgets) // 2
    section = {"attack": "DeepFool (foolbox)", "norm": cfg.norm, "samples": len(sample), "epsilons": list(budgets),
               "distilled": [round(float(v), 2) for v in distilled], "reference": [round(float(v), 2) for v in full]}
    row = {"aspect": "robustness", "metric": f"accuracy under DeepFool, {cfg.norm} eps {budgets[mid]:g} (%)",
           "distilled": round(float(distilled[mid]), 2), "reference": round(float(full[mid]), 2)}
    return StageResult(section, row, {"robustness": figures.robustness_figure(budgets, curves, cfg.norm)})


@AUDIT_STAGES.register("memorisation")
def memorisation(ctx: AuditContext) -> StageResult:
    """How close each distilled image is to its nearest training image; the share of near-copies."""
    look, threshold = resemblance(ctx.art, ctx.train), ctx.config.near_copy_ssim
    ssim = np.asarray(look["ssim"])
    section = {
        "mean_distance": round(look["mean_distance"], 4), "mean_ssim": round(look["mean_ssim"], 4),
        "max_ssim": round(float(ssim.max()), 4), "near_copy_ssim": threshold,
        "near_copy_share": round(float((ssim >= threshold).mean()), 4),
        "per_image": [{"index": i, "nearest": look["nearest_index"][i], "distance": round(d, 4), "ssim": round(s, 4)}
                      for i, (d, s) in enumerate(zip(look["distance"], look["ssim"], strict=True))]}
    row = {"aspect": "memorisation", "metric": f"near-copies (SSIM >= {threshold})",
           "distilled": f"{100 * (ssim >= threshold).mean():.1f}%", "reference": "n/a"}
    return StageResult(section, row, {"closest_pairs": figures.pairs_figure(ctx.art, ctx.train, look)})


@AUDIT_STAGES.register("fairness")
def fairness(ctx: AuditContext) -> StageResult:
    """Per-class accuracy and loss of the ConvNet-3 runs beside the reference's, and a t-SNE."""
    cfg, (reference, ref) = ctx.config, ctx.reference
    report = ctx.utility if ctx.utility is not None else ctx.evaluate(["convnet"])
    conv = next((a for a in report.archs if a.model == "convnet"), report.archs[0])
    acc, loss, names = conv.per_class_accuracy, conv.per_class_loss, list(ctx.art.spec.class_names)
    section = {
        "model": conv.model, "classes": names, "per_class_accuracy": [round(float(v), 2) for v in acc],
        "per_class_loss": [round(float(v), 4) for v in loss],
        "accuracy_variance": round(class_variance(acc), 4), "loss_variance": round(class_variance(loss), 6),
        "reference_per_class_accuracy": [round(float(v), 2) for v in ref.per_class_accuracy],
        "reference_accuracy_variance": round(class_variance(ref.per_class_accuracy), 4),
        "normalised_per_class_accuracy": [round(float(v), 4) for v in normalized_per_class(acc, ref.per_class_accuracy)]}
    row = {"aspect": "fairness", "metric": "variance of per-class accuracy", "distilled": round(class_variance(acc), 2),
           "reference": round(class_variance(ref.per_class_accuracy), 2)}
    return StageResult(section, row, {
        "per_class": figures.per_class_figure(names, acc, ref.per_class_accuracy),
        "tsne": figures.tsne_figure(reference, ctx.art, ctx.test, cfg.tsne_points, cfg.seed)})
