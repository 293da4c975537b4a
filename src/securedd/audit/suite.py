"""``securedd audit``: utility, privacy, memorisation and fairness of one artifact, with a reference.

Every stage trains fresh networks on the distilled set with the evaluation protocol and
compares them with a full-data reference, a ConvNet-3 trained on the whole training split:

- ``utility``: test accuracy, mean ± std over ``runs`` models of each architecture that
  fits the images (ConvNet-3, ResNet-18, VGG-16, AlexNet, LeNet, MLP by default).
- ``privacy``: the loss-threshold membership attack on a ConvNet-3 trained on the set,
  members = real training images (the pool the distillation drew from), non-members =
  test images, as many of each; ROC AUC, TPR at 0.1% and 1% FPR, ROC curve on log axes.
  The same attack on the reference model is the comparison. LiRA needs shadow
  distillations and runs in ``benchmarks/mia.py``.
- ``robustness``: accuracy under foolbox's DeepFool over a sweep of budgets (pixels in
  [0, 1], L-infinity by default) on ``robustness_samples`` test images, for a ConvNet-3
  trained on the set and for the reference; a curve of both.
- ``memorisation``: each distilled image's nearest training image (pixel L2) and their
  SSIM, the share of near-copies (SSIM at or above ``near_copy_ssim``), the closest pairs.
- ``fairness``: per-class accuracy and loss of the ConvNet-3 runs, their variance across
  classes (lower is fairer), per-class accuracy divided by the reference's, and a t-SNE of
  real and synthetic images in the reference's feature space.

Figures are PNG bytes; :mod:`securedd.audit.report` writes them into the report.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from securedd.api import evaluate
from securedd.artifacts import Artifact, load_artifact
from securedd.attacks.membership import MembershipResult as AttackResult
from securedd.attacks.membership import loss_scores
from securedd.attacks.robustness import DEFAULT_EPSILONS, check_budgets, deepfool_accuracy, require_foolbox
from securedd.config import EvalConfig
from securedd.data import load_dataset
from securedd.data.spec import RealData
from securedd.errors import ConfigError
from securedd.evaluation.fairness import class_variance, normalized_per_class
from securedd.evaluation.protocols import EvalHints
from securedd.models import create_model
from securedd.rng import make_generator
from securedd.training import TrainSettings, eval_settings, score_model, train_model

__all__ = ["DEFAULT_MODELS", "STAGES", "Audit", "AuditConfig", "run_audit"]

STAGES = ("utility", "privacy", "robustness", "memorisation", "fairness")
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
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"unknown audit stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
        if self.runs < 1 or self.mia_samples < 10:
            raise ConfigError(f"the audit needs runs >= 1 and mia_samples >= 10; got {self.runs}, {self.mia_samples}")
        if self.robustness_samples < 1:
            raise ConfigError(f"robustness_samples must be >= 1; got {self.robustness_samples}")
        check_budgets(self.norm, self.budgets)

    @property
    def budgets(self) -> tuple[float, ...]:
        """The DeepFool budgets: ``epsilons``, or the norm's default sweep."""
        return tuple(self.epsilons) if self.epsilons is not None else DEFAULT_EPSILONS.get(self.norm, ())


@dataclass
class Audit:
    """The audit's findings: a summary table, one section per stage, figures as PNG bytes."""

    artifact: dict[str, Any]
    config: dict[str, Any]
    summary: list[dict[str, Any]] = field(default_factory=list)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "securedd-audit/1", "artifact": self.artifact, "config": self.config,
                "summary": self.summary, "sections": self.sections, "figures": sorted(self.figures),
                "seconds": self.seconds}


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _reference(train: RealData, test: RealData, cfg: AuditConfig) -> tuple[torch.nn.Module, Any]:
    """ConvNet-3 trained on the whole training split: the full-data reference.

    ``reference_epochs`` epochs, or more on a small dataset, so that it takes at least
    ``reference_min_steps`` SGD steps (batches of 256).
    """
    gen = make_generator(cfg.seed, "audit", "reference")
    model = create_model("convnet", train.spec.shape, train.spec.num_classes, generator=gen)
    batches = -(-len(train) // 256)
    epochs = max(cfg.reference_epochs, -(-cfg.reference_min_steps // batches))  # small datasets: enough SGD steps
    train_model(model, train.images, train.labels, TrainSettings(epochs=epochs, batch_size=256), gen)
    return model, score_model(model, test)


def _set_model(art: Artifact, cfg: AuditConfig, settings: TrainSettings) -> torch.nn.Module:
    gen = make_generator(cfg.seed, "audit", "set-model")
    model = create_model("convnet", art.spec.shape, art.spec.num_classes, generator=gen)
    return train_model(model, art.images.float(), art.labels, settings, gen)


def _membership(model: torch.nn.Module, train: RealData, test: RealData, n: int, seed: int) -> AttackResult:
    gen = make_generator(seed, "audit", "mia")
    n = min(n, len(train), len(test))
    members = train.subset(torch.randperm(len(train), generator=gen)[:n])
    others = test.subset(torch.randperm(len(test), generator=gen)[:n])
    scores = torch.cat([loss_scores(model, members), loss_scores(model, others)]).numpy()
    return AttackResult("loss threshold", scores, np.r_[np.ones(n, bool), np.zeros(n, bool)])


def _roc_figure(curves: dict[str, AttackResult]) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name, res in curves.items():
        ax.plot(np.clip(res.fpr, 1e-5, 1), np.clip(res.tpr, 1e-5, 1), label=f"{name} (AUC {res.auc:.3f})")
    ax.plot([1e-5, 1], [1e-5, 1], ls="--", c="grey", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="false positive rate", ylabel="true positive rate",
           title="membership inference (loss threshold)")
    ax.legend(fontsize=8)
    return _png(fig)


def _robustness_figure(budgets: tuple[float, ...], curves: dict[str, np.ndarray], norm: str) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for (name, acc), colour in zip(curves.items(), ("#3b6ea8", "#999999"), strict=False):
        ax.plot(budgets, acc, marker="o", label=name, color=colour)
    ax.set(xlabel=f"DeepFool budget ({'L-inf' if norm == 'linf' else 'L2'}, pixels in [0, 1])",
           ylabel="accuracy (%)", ylim=(0, 100), title="robustness under DeepFool")
    ax.legend(fontsize=8)
    return _png(fig)


def _tsne_figure(reference: torch.nn.Module, art: Artifact, test: RealData, points: int, seed: int) -> bytes:
    from sklearn.manifold import TSNE

    gen = make_generator(seed, "audit", "tsne")
    real = test.subset(torch.randperm(len(test), generator=gen)[:points])
    with torch.no_grad():
        reference.eval()
        feats = torch.cat([reference.embed(real.images), reference.embed(art.images.float())]).numpy()
    xy = TSNE(n_components=2, perplexity=min(30.0, (len(feats) - 1) / 3), random_state=seed,
              init="pca").fit_transform(feats)
    n = len(real)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.4))
    cmap = plt.get_cmap("tab10" if art.spec.num_classes <= 10 else "tab20")
    ax.scatter(xy[:n, 0], xy[:n, 1], c=real.labels.numpy() % 20, cmap=cmap, s=6, alpha=0.35, label="real (test)")
    ax.scatter(xy[n:, 0], xy[n:, 1], c=art.hard_labels().numpy() % 20, cmap=cmap, s=60, marker="*",
               edgecolors="black", linewidths=0.6, label="distilled")
    ax.set(xticks=[], yticks=[], title="t-SNE of reference features")
    ax.legend(fontsize=8)
    return _png(fig)


def _per_class_figure(names: list[str], distilled: torch.Tensor, reference: torch.Tensor) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(names)), 3.4))
    x = np.arange(len(names))
    ax.bar(x - 0.2, reference.numpy(), 0.4, label="full-data reference", color="#999999")
    ax.bar(x + 0.2, distilled.numpy(), 0.4, label="distilled (ConvNet-3)", color="#3b6ea8")
    ax.set(xticks=x, xticklabels=names, ylabel="test accuracy (%)", ylim=(0, 118), yticks=range(0, 101, 20),
           title="per-class accuracy")
    ax.tick_params(axis="x", labelsize=7, rotation=45 if len(names) > 10 else 0)
    ax.legend(fontsize=8, loc="upper center", ncol=2, frameon=False)  # above the bars, not over them
    return _png(fig)


def _pairs_figure(art: Artifact, train: RealData, look: dict[str, Any], count: int = 10) -> bytes:
    from securedd.visualize import pairs_figure

    order = np.argsort(look["distance"])[:count]
    syn = art.spec.denormalize(art.images.float()[order])
    real = train.spec.denormalize(train.images[[look["nearest_index"][i] for i in order]].float())
    captions = [f"d {look['distance'][i]:.1f}\nssim {look['ssim'][i]:.2f}" for i in order]
    return _png(pairs_figure(syn, real, captions, rows=("distilled", "nearest\nreal")))


def run_audit(artifact: str | Path | Artifact, config: AuditConfig = AuditConfig(), *,
              data_root: str | Path | None = None, progress: bool = True) -> Audit:
    """Run ``config.stages`` on the artifact (see the module text) and return the findings."""
    from tqdm.auto import tqdm

    from securedd.attacks.key_search import fitting_models, resemblance

    if "robustness" in config.stages:
        require_foolbox()  # fail before the long stages, not after them
    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    if not EvalHints.of(art).get_protocol().fresh_models:
        raise ConfigError("the audit trains networks on the set with SGD; a DD/SLDD/SecDD set is a learned step "
                          "schedule for particular networks: audit it with securedd evaluate instead")
    spec = art.spec
    train = load_dataset(spec.name, "train", root=data_root, spec=spec)
    test = load_dataset(spec.name, "test", root=data_root, spec=spec)
    audit = Audit({"path": str(art.path) if art.path else None, "sha256": art.sha256, "method": art.method,
                   "dataset": spec.name, "images": int(art.images.shape[0]), "ipc": art.ipc,
                   "privacy_ledger": art.metadata.get("privacy")}, asdict(config))
    settings = eval_settings(EvalConfig(epochs=config.epochs, dsa=config.dsa), spec.dsa_strategy)
    names = list(spec.class_names)
    stages = tqdm(["reference", *config.stages], desc="audit", disable=not progress)
    reference = ref_score = utility = set_model = None
    for stage in stages:
        stages.set_postfix_str(stage)
        start = time.perf_counter()
        if stage == "reference":
            reference, ref_score = _reference(train, test, config)
            audit.summary.append({"aspect": "utility", "metric": "test accuracy, ConvNet-3 (%)",
                                  "reference": round(ref_score.accuracy, 2)})
        elif stage == "utility":
            fits = [m for m in config.models if m in fitting_models(art)]
            utility = evaluate(art, models=fits, runs=config.runs, epochs=config.epochs, dsa=config.dsa, test=test,
                               seed=config.seed, progress=progress)
            audit.sections["utility"] = {"models": [a.to_dict() for a in utility.archs],
                                         "skipped": [m for m in config.models if m not in fits],
                                         "reference_accuracy": round(ref_score.accuracy, 2)}
            conv = next((a for a in utility.archs if a.model == "convnet"), utility.archs[0])
            audit.summary[0].update(metric=f"test accuracy, {conv.model} (%)", distilled=f"{conv.mean:.2f} ± "
                                    f"{conv.std:.2f}")
        elif stage == "privacy":
            if set_model is None:
                set_model = _set_model(art, config, settings)
            attack = _membership(set_model, train, test, config.mia_samples, config.seed)
            base = _membership(reference, train, test, config.mia_samples, config.seed)
            audit.sections["privacy"] = {"distilled": attack.to_dict(), "reference": base.to_dict()}
            audit.figures["roc"] = _roc_figure({"trained on the distilled set": attack,
                                                "full-data reference": base})
            audit.summary.append({"aspect": "privacy", "metric": "membership AUC, loss threshold",
                                  "distilled": round(attack.auc, 4), "reference": round(base.auc, 4)})
        elif stage == "robustness":
            if set_model is None:
                set_model = _set_model(art, config, settings)
            gen = make_generator(config.seed, "audit", "robustness")
            sample = test.subset(torch.randperm(len(test), generator=gen)[: config.robustness_samples])
            budgets = config.budgets
            curves = {"trained on the distilled set": deepfool_accuracy(set_model, sample, budgets, norm=config.norm),
                      "full-data reference": deepfool_accuracy(reference, sample, budgets, norm=config.norm)}
            distilled, full = curves.values()
            audit.sections["robustness"] = {
                "attack": "DeepFool (foolbox)", "norm": config.norm, "samples": len(sample),
                "epsilons": list(budgets), "distilled": [round(float(v), 2) for v in distilled],
                "reference": [round(float(v), 2) for v in full]}
            audit.figures["robustness"] = _robustness_figure(budgets, curves, config.norm)
            mid = len(budgets) // 2
            audit.summary.append({"aspect": "robustness",
                                  "metric": f"accuracy under DeepFool, {config.norm} eps {budgets[mid]:g} (%)",
                                  "distilled": round(float(distilled[mid]), 2), "reference": round(float(full[mid]), 2)})
        elif stage == "memorisation":
            look = resemblance(art, train)
            ssim = np.asarray(look["ssim"])
            audit.sections["memorisation"] = {
                "mean_distance": round(look["mean_distance"], 4), "mean_ssim": round(look["mean_ssim"], 4),
                "max_ssim": round(float(ssim.max()), 4), "near_copy_ssim": config.near_copy_ssim,
                "near_copy_share": round(float((ssim >= config.near_copy_ssim).mean()), 4),
                "per_image": [{"index": i, "nearest": look["nearest_index"][i], "distance": round(d, 4),
                               "ssim": round(s, 4)} for i, (d, s) in enumerate(zip(look["distance"], look["ssim"],
                                                                                   strict=True))]}
            audit.figures["closest_pairs"] = _pairs_figure(art, train, look)
            audit.summary.append({"aspect": "memorisation", "metric": f"near-copies (SSIM >= {config.near_copy_ssim})",
                                  "distilled": f"{100 * (ssim >= config.near_copy_ssim).mean():.1f}%",
                                  "reference": "n/a"})
        elif stage == "fairness":
            if utility is None:
                utility = evaluate(art, models=["convnet"], runs=config.runs, epochs=config.epochs, dsa=config.dsa,
                                   test=test, seed=config.seed, progress=progress)
            conv = next((a for a in utility.archs if a.model == "convnet"), utility.archs[0])
            acc, loss = conv.per_class_accuracy, conv.per_class_loss
            normalised = normalized_per_class(acc, ref_score.per_class_accuracy)
            audit.sections["fairness"] = {
                "model": conv.model, "classes": names, "per_class_accuracy": [round(float(v), 2) for v in acc],
                "per_class_loss": [round(float(v), 4) for v in loss],
                "accuracy_variance": round(class_variance(acc), 4), "loss_variance": round(class_variance(loss), 6),
                "reference_per_class_accuracy": [round(float(v), 2) for v in ref_score.per_class_accuracy],
                "reference_accuracy_variance": round(class_variance(ref_score.per_class_accuracy), 4),
                "normalised_per_class_accuracy": [round(float(v), 4) for v in normalised]}
            audit.figures["per_class"] = _per_class_figure(names, acc, ref_score.per_class_accuracy)
            audit.figures["tsne"] = _tsne_figure(reference, art, test, config.tsne_points, config.seed)
            audit.summary.append({"aspect": "fairness", "metric": "variance of per-class accuracy",
                                  "distilled": round(class_variance(acc), 2),
                                  "reference": round(class_variance(ref_score.per_class_accuracy), 2)})
        audit.seconds[stage] = round(time.perf_counter() - start, 1)
    return audit
