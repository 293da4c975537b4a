"""PNG grids of distilled sets: one row per class, de-normalised, labelled by class name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from securedd.artifacts import Artifact  # noqa: E402
from securedd.data.zca import ZCAWhitening  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["display_pixels", "pairs_figure", "save_grid", "save_neighbour_grid", "save_pairs", "save_search_curve"]


def display_pixels(artifact: Artifact) -> torch.Tensor:
    """The artifact's images as [0, 1] pixels: ZCA undone when it carries a transform, else de-normalised."""
    zca = ZCAWhitening.from_tensors(artifact.extras)
    images = artifact.images.float()
    pixels = zca.inverse(images) if zca is not None else artifact.spec.denormalize(images)
    return pixels.clamp(0, 1)


def save_grid(artifact: Artifact, path: str | Path, *, per_class: int = 10, max_classes: int = 20) -> Path:
    """Write a PNG grid of the artifact's images (at most ``per_class`` per row) and return its path.

    Whitened sets (MTT with ZCA) are shown as pixels: the stored transform is inverted.
    """
    spec = artifact.spec
    pixels = display_pixels(artifact)
    labels = artifact.hard_labels()
    classes = list(range(min(spec.num_classes, max_classes)))
    rows = [torch.nonzero(labels == c).flatten()[:per_class] for c in classes]
    cols = max((len(r) for r in rows), default=1) or 1
    size = 0.9 if spec.height <= 16 else 1.1
    fig, axes = plt.subplots(len(classes), cols, figsize=(cols * size + 1.2, len(classes) * size + 0.4), squeeze=False)
    for r, (c, index) in enumerate(zip(classes, rows, strict=True)):
        for j in range(cols):
            ax = axes[r][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(index):
                img = pixels[int(index[j])].permute(1, 2, 0).numpy()
                ax.imshow(img.squeeze(-1) if spec.channels == 1 else img, cmap="gray" if spec.channels == 1 else None,
                          vmin=0, vmax=1, interpolation="nearest")
        axes[r][0].set_ylabel(spec.class_names[c], rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"{artifact.method} · {spec.name.split('/')[-1]} · {len(labels)} images", fontsize=10)
    return _save(fig, path)


def save_neighbour_grid(artifact: Artifact, real_pixels: torch.Tensor, distances: list[float], ssim: list[float],
                        path: str | Path, max_images: int = 20) -> Path:
    """PNG: each transmitted image (top) above its nearest real training image (bottom).

    ``real_pixels`` (N, C, H, W) in [0, 1], one neighbour per artifact image, with the
    pixel distance and SSIM of each pair written under it.
    """
    captions = [f"d {d:.1f}\nssim {s:.2f}" for d, s in zip(distances, ssim, strict=True)]
    return save_pairs(display_pixels(artifact), real_pixels, captions, path, rows=("sent", "nearest\nreal"),
                      max_images=max_images)


def save_pairs(top: torch.Tensor, bottom: torch.Tensor, captions: list[str], path: str | Path, *,
               rows: tuple[str, str], max_images: int = 20) -> Path:
    """PNG: two rows of [0, 1] pixel images (N, C, H, W), pair j in column j with ``captions[j]`` under it."""
    return _save(pairs_figure(top, bottom, captions, rows=rows, max_images=max_images), path)


def pairs_figure(top: torch.Tensor, bottom: torch.Tensor, captions: list[str], *, rows: tuple[str, str],
                 max_images: int = 20) -> Figure:
    """The figure :func:`save_pairs` writes (for callers that embed it elsewhere)."""
    n = min(len(top), max_images)
    grey = top.shape[1] == 1
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n + 0.6, 2.9), squeeze=False)
    for j in range(n):
        for r, img in enumerate((top[j], bottom[j])):
            ax = axes[r][j]
            ax.set_xticks([])
            ax.set_yticks([])
            arr = img.clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(arr.squeeze(-1) if grey else arr, cmap="gray" if grey else None, vmin=0, vmax=1,
                      interpolation="nearest")
        axes[1][j].set_xlabel(captions[j], fontsize=7)
    axes[0][0].set_ylabel(rows[0], fontsize=9)
    axes[1][0].set_ylabel(rows[1], fontsize=9)
    return fig


def save_search_curve(curves: dict[str, list[dict[str, float]]], path: str | Path, *,
                      key_accuracy: float | None = None) -> Path:
    """Test accuracy against keys tried, one pair of lines per attacker of ``curves``: its pick
    so far (solid) and the best candidate so far (dashed); the key holder's as a line."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for k, (label, curve) in enumerate(curves.items()):
        tried = [row["tried"] for row in curve]
        colour = f"C{k}"
        ax.plot(tried, [row["pick_accuracy"] for row in curve], color=colour, label=f"{label}: its pick")
        ax.plot(tried, [row["best_accuracy"] for row in curve], color=colour, linestyle="--",
                label=f"{label}: best candidate (unknowable)")
    if key_accuracy is not None:
        ax.axhline(key_accuracy, color="black", linestyle=":", label="key holder")
    ax.set_xscale("log")
    ax.set_xlabel("keys tried")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
