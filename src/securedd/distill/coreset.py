"""Coreset baselines: pick real images instead of learning new ones.

``random`` takes random real images per class; ``herding`` and ``kcenter`` select in the
feature space of a ConvNet briefly trained on the real data (``embed_steps`` SGD steps;
0 keeps a random network). Each touches real data only to select, and the selected
images go into the artifact as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from securedd.distill.base import METHODS, DistillContext, Method, NoParams
from securedd.distill.synthetic import SyntheticSet, class_labels
from securedd.errors import ConfigError
from securedd.models.protocols import Embedder
from securedd.training import inference_batch

__all__ = ["HerdingMethod", "KCenterMethod", "RandomMethod", "herding_select", "kcenter_select"]


@METHODS.register("random")
class RandomMethod(Method[NoParams]):
    """Random real images, ``ipc`` per class (the field's baseline)."""

    name = "random"
    Params = NoParams
    demo_rank = 0

    def init_synthetic(self) -> SyntheticSet:
        ctx = self.ctx
        index = torch.cat([ctx.sampler.indices(c, ctx.ipc) for c in range(ctx.spec.num_classes)])
        index = index.to(ctx.device)
        return SyntheticSet(ctx.real.images[index].clone(), class_labels(ctx.spec.num_classes, ctx.ipc, ctx.device))


@dataclass(frozen=True)
class EmbeddingParams:
    """Settings of the feature extractor used for selection."""

    embed_model: str = "convnet"
    embed_steps: int = 300
    embed_batch: int = 64
    embed_lr: float = 0.01


def train_embedder(ctx: DistillContext, params: EmbeddingParams) -> torch.nn.Module:
    """A ``params.embed_model`` trained for ``embed_steps`` SGD steps on random real batches."""
    # not training.train_model: batches drawn with replacement for a number of steps, not epochs over the data
    model = ctx.new_model(params.embed_model, purpose="embed/init")
    gen = ctx.generator("embed/batches")
    opt = torch.optim.SGD(model.parameters(), lr=params.embed_lr, momentum=0.9, weight_decay=5e-4)
    model.train()
    n = len(ctx.real)
    for _ in tqdm(range(params.embed_steps), desc="train feature extractor", disable=not ctx.progress, leave=False):
        index = torch.randint(n, (min(params.embed_batch, n),), generator=gen, device=gen.device).to(ctx.device)
        loss = F.cross_entropy(model(ctx.real.images[index]), ctx.real.labels[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def embed_all(model: Embedder, images: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """(N, D) features of every image, in batches of :func:`inference_batch` by default."""
    batch = batch or inference_batch(images)
    return torch.cat([model.embed(images[i : i + batch]) for i in range(0, len(images), batch)])


def herding_select(features: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of ``k`` rows whose running mean tracks the mean of ``features`` (N, D) greedily."""
    mu = features.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    taken = torch.zeros(len(features), dtype=torch.bool, device=features.device)
    for step in range(1, k + 1):
        dist = ((mu - (running + features) / step) ** 2).sum(1)
        dist[taken] = float("inf")
        j = int(dist.argmin())
        chosen.append(j)
        taken[j] = True
        running += features[j]
    return torch.tensor(chosen, dtype=torch.long)


def kcenter_select(features: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy k-center: start at the row nearest the mean, then add the farthest row each time.

    Starting at the centre makes the first pick the same as herding's, so at one image per
    class the two select the same image.
    """
    first = int(((features - features.mean(0)) ** 2).sum(1).argmin())
    chosen = [first]
    min_dist = torch.cdist(features, features[first : first + 1]).squeeze(1)
    for _ in range(k - 1):
        j = int(min_dist.argmax())
        chosen.append(j)
        min_dist = torch.minimum(min_dist, torch.cdist(features, features[j : j + 1]).squeeze(1))
    return torch.tensor(chosen, dtype=torch.long)


class _FeatureCoreset(Method[EmbeddingParams]):
    Params = EmbeddingParams
    select = staticmethod(herding_select)

    def init_synthetic(self) -> SyntheticSet:
        ctx = self.ctx
        model = train_embedder(ctx, self.params)
        if not isinstance(model, Embedder):
            raise ConfigError(f"{self.name} selects in a feature space: method.embed_model must be a network with "
                              f"penultimate features (embed); {type(model).__name__} has none")
        chosen = []
        for c in tqdm(range(ctx.spec.num_classes), desc=f"select ({self.name})", disable=not ctx.progress, leave=False):
            pool = ctx.sampler.class_indices(c).to(ctx.device)
            feats = embed_all(model, ctx.real.images[pool])
            chosen.append(pool[type(self).select(feats, ctx.ipc).to(ctx.device)])
        index = torch.cat(chosen)
        return SyntheticSet(ctx.real.images[index].clone(), class_labels(ctx.spec.num_classes, ctx.ipc, ctx.device))


@METHODS.register("herding")
class HerdingMethod(_FeatureCoreset):
    """Herding: per class, images whose running feature mean tracks the class mean."""

    name = "herding"
    select = staticmethod(herding_select)
    demo_rank = 2


@METHODS.register("kcenter")
class KCenterMethod(_FeatureCoreset):
    """Greedy k-center: per class, images that cover the class in feature space."""

    name = "kcenter"
    select = staticmethod(kcenter_select)
    demo_rank = 1
