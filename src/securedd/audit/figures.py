"""The audit's figures, as PNG bytes: ROC curves, robustness curves, per-class bars, t-SNE, closest pairs."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from securedd.artifacts import Artifact
from securedd.attacks.membership import MembershipResult
from securedd.data.spec import RealData
from securedd.errors import ConfigError
from securedd.models.protocols import Embedder
from securedd.rng import make_generator
from securedd.visualize import pairs_figure as side_by_side

__all__ = ["pairs_figure", "per_class_figure", "png", "pyplot", "robustness_figure", "roc_figure", "tsne_figure"]


def png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt



def roc_figure(curves: dict[str, MembershipResult]) -> bytes:
    """ROC curves of membership attacks on log axes, one per named result."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name, res in curves.items():
        ax.plot(np.clip(res.fpr, 1e-5, 1), np.clip(res.tpr, 1e-5, 1), label=f"{name} (AUC {res.auc:.3f})")
    ax.plot([1e-5, 1], [1e-5, 1], ls="--", c="grey", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="false positive rate", ylabel="true positive rate",
           title="membership inference (loss threshold)")
    ax.legend(fontsize=8)
    return png(fig)


def robustness_figure(budgets: tuple[float, ...], curves: dict[str, np.ndarray], norm: str) -> bytes:
    """Accuracy under DeepFool against the budget, one curve per named model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for (name, acc), colour in zip(curves.items(), ("#3b6ea8", "#999999"), strict=False):
        ax.plot(budgets, acc, marker="o", label=name, color=colour)
    ax.set(xlabel=f"DeepFool budget ({'L-inf' if norm == 'linf' else 'L2'}, pixels in [0, 1])",
           ylabel="accuracy (%)", ylim=(0, 100), title="robustness under DeepFool")
    ax.legend(fontsize=8)
    return png(fig)


def tsne_figure(reference: torch.nn.Module, art: Artifact, test: RealData, points: int, seed: int) -> bytes:
    """t-SNE of ``points`` test images and the distilled set in ``reference``'s feature space."""
    from sklearn.manifold import TSNE

    if not isinstance(reference, Embedder):
        raise ConfigError(f"the t-SNE needs a reference network with penultimate features (embed); got "
                          f"{type(reference).__name__}")
    gen = make_generator(seed, "audit", "tsne")
    real = test.subset(torch.randperm(len(test), generator=gen)[:points])
    with torch.no_grad():
        reference.eval()
        feats = torch.cat([reference.embed(real.images), reference.embed(art.images.float())]).numpy()
    xy = TSNE(n_components=2, perplexity=min(30.0, (len(feats) - 1) / 3), random_state=seed,
              init="pca").fit_transform(feats)
    n = len(real)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.4))
    cmap = plt.get_cmap("tab10" if art.spec.num_classes <= 10 else "tab20")
    ax.scatter(xy[:n, 0], xy[:n, 1], c=real.labels.numpy() % 20, cmap=cmap, s=6, alpha=0.35, label="real (test)")
    ax.scatter(xy[n:, 0], xy[n:, 1], c=art.hard_labels().numpy() % 20, cmap=cmap, s=60, marker="*",
               edgecolors="black", linewidths=0.6, label="distilled")
    ax.set(xticks=[], yticks=[], title="t-SNE of reference features")
    ax.legend(fontsize=8)
    return png(fig)


def per_class_figure(names: list[str], distilled: torch.Tensor, reference: torch.Tensor) -> bytes:
    """Per-class test accuracy of the distilled set's model beside the full-data reference."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(names)), 3.4))
    x = np.arange(len(names))
    ax.bar(x - 0.2, reference.numpy(), 0.4, label="full-data reference", color="#999999")
    ax.bar(x + 0.2, distilled.numpy(), 0.4, label="distilled (ConvNet-3)", color="#3b6ea8")
    ax.set(xticks=x, xticklabels=names, ylabel="test accuracy (%)", ylim=(0, 118), yticks=range(0, 101, 20),
           title="per-class accuracy")
    ax.tick_params(axis="x", labelsize=7, rotation=45 if len(names) > 10 else 0)
    ax.legend(fontsize=8, loc="upper center", ncol=2, frameon=False)  # above the bars, not over them
    return png(fig)


def pairs_figure(art: Artifact, train: RealData, look: dict[str, Any], count: int = 10) -> bytes:
    """The ``count`` distilled images closest to a training image, each above its nearest real one."""
    order = np.argsort(look["distance"])[:count]
    syn = art.spec.denormalize(art.images.float()[order])
    real = train.spec.denormalize(train.images[[look["nearest_index"][i] for i in order]].float())
    captions = [f"d {look['distance'][i]:.1f}\nssim {look['ssim'][i]:.2f}" for i in order]
    return png(side_by_side(syn, real, captions, rows=("distilled", "nearest\nreal")))
