"""Membership inference: the loss-threshold attack and LiRA (online and offline).

The question: given a model and a real image, was the image among those the model's
training pipeline saw? Here the pipeline may be "distil a set from these images, train a
network on the set", so the members are the real images the distillation used.

- **Threshold** (Yeom et al.): the lower the model's loss on an example, the likelier a
  member. Needs nothing but the model.
- **LiRA** (Carlini et al.): train shadow models with the same pipeline on random halves
  of a pool of candidate images, so every candidate is "in" for about half of them. For
  each candidate fit Gaussians to the shadows' logit-scaled confidence
  ``phi = log(p_y / (1 - p_y))`` with and without it. Online: the score is the likelihood
  ratio of the target's ``phi`` under the two. Offline: only the "out" fit is used, and the
  score is how far above it the target's ``phi`` lies (one-sided). With few shadows a
  single variance shared by all candidates is steadier (``global_variance``). With
  ``shift > 0`` every model is queried on the image and on four copies moved by ``shift``
  pixels (LiRA's augmented queries; the evaluation trains with such shifts): one Gaussian
  per query, the scores averaged over the queries.

Metrics: ROC AUC and the TPR at 0.1% and 1% FPR, from scikit-learn's ROC curve.

The attacks: :class:`LossThreshold` (``loss-threshold``) and :class:`Lira` (``lira``), both
on a :class:`MembershipTarget`, both returning a :class:`MembershipResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from securedd.attacks.base import ATTACKS, Attack, AttackResult, NoParams
from securedd.data.spec import RealData
from securedd.errors import ConfigError
from securedd.rng import make_generator
from securedd.training import inference_batch

__all__ = ["Lira", "LiraShadows", "LossThreshold", "MembershipResult", "MembershipTarget", "Pipeline",
           "logit_confidence", "loss_scores", "query_confidence", "roc_summary", "run_lira", "shifted_views",
           "tpr_at_fpr"]

Pipeline = Callable[[RealData, int], torch.nn.Module]
"""``(training images, seed) -> trained model``: what the target and every shadow go through."""


@torch.no_grad()
def logit_confidence(model: torch.nn.Module, data: RealData, batch: int | None = None) -> torch.Tensor:
    """(N,) ``log p_y - log(1 - p_y)`` of the true class, computed stably from the logits."""
    model.eval()
    batch = batch or inference_batch(data.images)
    out = []
    for start in range(0, len(data), batch):
        logits = model(data.images[start : start + batch].float()).double()
        y = data.labels[start : start + batch]
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.scatter(1, y[:, None], float("-inf")).logsumexp(1)
        out.append(true - others)
    return torch.cat(out)


def shifted_views(data: RealData, shift: int) -> list[RealData]:
    """``data`` itself and, for ``shift > 0``, four copies moved ``shift`` pixels down, up, right
    and left (edge pixels repeated into the gap)."""
    if shift < 0:
        raise ConfigError(f"the query shift must be >= 0 pixels; got {shift}")
    if shift == 0:
        return [data]
    images = data.images.float()
    height, width = images.shape[-2:]
    padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
    views = [data]
    for dy, dx in ((shift, 0), (-shift, 0), (0, shift), (0, -shift)):
        top, left = shift - dy, shift - dx
        views.append(RealData(padded[..., top : top + height, left : left + width], data.labels, data.spec))
    return views


def query_confidence(model: torch.nn.Module, data: RealData, shift: int = 0) -> torch.Tensor:
    """(V, N) :func:`logit_confidence` on each of :func:`shifted_views` (V = 1, or 5 with a shift)."""
    return torch.stack([logit_confidence(model, view) for view in shifted_views(data, shift)])


@torch.no_grad()
def loss_scores(model: torch.nn.Module, data: RealData, batch: int | None = None) -> torch.Tensor:
    """(N,) the negative cross-entropy of each example: the threshold attack's score."""
    model.eval()
    batch = batch or inference_batch(data.images)
    return torch.cat([-F.cross_entropy(model(data.images[s : s + batch].float()).double(),
                                       data.labels[s : s + batch], reduction="none")
                      for s in range(0, len(data), batch)])


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The best TPR whose FPR does not exceed ``target`` (0 when none does)."""
    ok = fpr <= target
    return float(tpr[ok].max()) if ok.any() else 0.0


@dataclass
class MembershipResult(AttackResult):
    """One attack's scores (higher: more likely a member) and its ROC summary."""

    name: str
    scores: np.ndarray
    members: np.ndarray
    auc: float = 0.0
    tpr_at: dict[str, float] = field(default_factory=dict)
    fpr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tpr: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.auc, self.tpr_at, self.fpr, self.tpr = roc_summary(self.scores, self.members)

    def to_dict(self) -> dict[str, Any]:
        return {"attack": self.name, "auc": round(self.auc, 4), **{f"tpr@{k}": round(v, 4) for k, v in
                                                                     self.tpr_at.items()},
                "members": int(self.members.sum()), "non_members": int((~self.members).sum())}

    @property
    def summary(self) -> str:
        return (f"{self.name or 'membership inference'}: AUC {self.auc:.3f}, TPR {self.tpr_at['0.1%FPR']:.3f} at "
                f"0.1% FPR, {self.tpr_at['1%FPR']:.3f} at 1% FPR ({int(self.members.sum())} members, "
                f"{int((~self.members).sum())} non-members)")


def roc_summary(scores: np.ndarray, members: np.ndarray) -> tuple[float, dict[str, float], np.ndarray, np.ndarray]:
    """``(AUC, {"0.1%FPR": tpr, "1%FPR": tpr}, fpr, tpr)``."""
    from sklearn.metrics import roc_auc_score, roc_curve  # imported here: the command line starts faster

    members = np.asarray(members, dtype=bool)
    if members.all() or not members.any():
        raise ConfigError("membership inference needs both members and non-members to score")
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    fpr, tpr, _ = roc_curve(members, scores)
    return (float(roc_auc_score(members, scores)), {"0.1%FPR": tpr_at_fpr(fpr, tpr, 0.001),
                                                   "1%FPR": tpr_at_fpr(fpr, tpr, 0.01)}, fpr, tpr)


@dataclass
class LiraShadows:
    """The shadows' ``phi`` on every pool example, and which examples each shadow trained on."""

    phi: torch.Tensor
    """(S, V, N) logit-scaled confidence of shadow s on pool example n for each of V queries
    (:func:`run_lira`); an (S, N) tensor counts as one query."""
    inside: torch.Tensor
    """(S, N) bool: example n was in shadow s's training half."""

    def scores(self, target_phi: torch.Tensor, *, online: bool = True, global_variance: bool = True) -> np.ndarray:
        """LiRA scores of the target's ``phi`` on the pool (higher: more likely a member).

        ``target_phi`` is (N,), or (V, N) when the shadows were queried V times per example.
        """
        from scipy.stats import norm  # imported here: the command line starts faster

        phi, inside = self.phi.double(), self.inside
        phi = phi[:, None] if phi.dim() == 2 else phi  # (S, V, N)
        x = target_phi.double().reshape(-1, phi.shape[-1])
        if x.shape[0] != phi.shape[1]:
            raise ConfigError(f"the target was queried {x.shape[0]} time(s) per example, the shadows "
                              f"{phi.shape[1]}: use the same query shift for both")
        if online and (inside.sum(0).min() < 1 or (~inside).sum(0).min() < 1):
            raise ConfigError("online LiRA needs every example in and out of at least one shadow; train more shadows")
        per_query = []
        for v in range(phi.shape[1]):
            mu_out, var_out = _fit(phi[:, v], ~inside, global_variance)
            if not online:
                per_query.append(norm.logcdf(((x[v] - mu_out) / var_out.sqrt()).numpy()))  # how far above "out"
                continue
            mu_in, var_in = _fit(phi[:, v], inside, global_variance)
            per_query.append(norm.logpdf(x[v].numpy(), mu_in.numpy(), var_in.sqrt().numpy())
                             - norm.logpdf(x[v].numpy(), mu_out.numpy(), var_out.sqrt().numpy()))
        scores: np.ndarray = np.mean(per_query, axis=0)
        return scores


def _fit(phi: torch.Tensor, mask: torch.Tensor, global_variance: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example mean and variance of ``phi`` over the shadows where ``mask`` holds."""
    w = mask.double()
    count = w.sum(0).clamp_min(1)
    mu = (phi * w).sum(0) / count
    resid = ((phi - mu) ** 2) * w
    if global_variance:
        var = resid.sum() / w.sum().clamp_min(1)
        return mu, var.expand_as(mu).clamp_min(1e-8)
    return mu, (resid.sum(0) / (count - 1).clamp_min(1)).clamp_min(1e-8)


def run_lira(pipeline: Pipeline, pool: RealData, shadows: int, generator: torch.Generator, *, shift: int = 0,
             progress: bool = True) -> LiraShadows:
    """Train ``shadows`` models with ``pipeline``, each on a random half of ``pool``, and query
    each on the whole pool (:func:`query_confidence` with ``shift``).

    The halves are balanced: every example is in exactly half of the shadows (for an even
    count), as in LiRA's reference experiments.
    """
    if shadows < 2:
        raise ConfigError(f"LiRA needs at least 2 shadow models; got {shadows}")
    n = len(pool)
    ranks = torch.stack([torch.randperm(shadows, generator=generator) for _ in range(n)], 1)  # (S, N)
    inside = ranks < shadows // 2
    phi = []
    for s in tqdm(range(shadows), desc="LiRA shadows", disable=not progress):
        model = pipeline(pool.subset(torch.nonzero(inside[s]).flatten()), s)
        phi.append(query_confidence(model, pool, shift))
    return LiraShadows(torch.stack(phi), inside)


@dataclass(frozen=True)
class MembershipTarget:
    """A trained model, the labelled examples to score and the truth: which of them it trained on.

    ``members`` is (N,) bool over ``data``; the attacks use it only to score themselves.
    ``pipeline`` is how the model was made from its training images (``(images, seed) ->
    model``): LiRA trains its shadow models with it; the threshold attack ignores it.
    """

    model: torch.nn.Module
    data: RealData
    members: torch.Tensor | np.ndarray
    pipeline: Pipeline | None = None

    def __post_init__(self) -> None:
        if len(self.members) != len(self.data):
            raise ConfigError(f"members marks {len(self.members)} examples; the data has {len(self.data)}")

    def truth(self) -> np.ndarray:
        """``members`` as a numpy bool array."""
        members = self.members.cpu().numpy() if isinstance(self.members, torch.Tensor) else self.members
        return np.asarray(members, dtype=bool)


@ATTACKS.register("loss-threshold")
class LossThreshold(Attack[MembershipTarget, MembershipResult]):
    """Membership inference by the model's loss on each example: the lower, the likelier a member.

    Threat model: the attacker can query the trained model for its loss (or its output and
    the true label) on any example it holds, and knows nothing else: not the training
    pipeline, not the data distribution beyond those examples, no shadow models. It scores
    each candidate; thresholding the score is the attack, summarised over all thresholds
    by the ROC.

    Paper: Yeom, Giacomelli, Fredrikson and Jha, "Privacy Risk in Machine Learning:
    Analyzing the Connection to Overfitting", IEEE CSF 2018.
    """

    name = "loss-threshold"
    Params = NoParams

    def run(self, target: MembershipTarget, *, progress: bool = False) -> MembershipResult:
        return MembershipResult("loss threshold", loss_scores(target.model, target.data).numpy(), target.truth())


@dataclass(frozen=True)
class LiraParams:
    """LiRA's budget and variant."""

    shadows: int = 16
    """Shadow models, each trained on a random half of the examples (every example in half of them)."""
    online: bool = True
    """Online: the likelihood ratio of the "in" and "out" fits; offline: only the "out" fit."""
    global_variance: bool = True
    """One variance shared by all examples (steadier with few shadows) instead of one per example."""
    shift: int = 0
    """Query each model on the image and four copies moved this many pixels (0: the image only)."""
    seed: int = 0
    """Seeds which half each shadow trains on."""

    def __post_init__(self) -> None:
        if self.shadows < 2:
            raise ConfigError(f"LiRA needs at least 2 shadow models; got shadows={self.shadows}")
        if self.shift < 0:
            raise ConfigError(f"the query shift must be >= 0 pixels; got shift={self.shift}")


@ATTACKS.register("lira")
class Lira(Attack[MembershipTarget, MembershipResult]):
    """Membership inference by a per-example likelihood ratio over shadow models (LiRA).

    Threat model: the attacker can query the trained model's logits on the candidate
    examples, knows the training pipeline (architecture, data processing, training or
    distillation procedure) and can run it: it trains shadow models on random halves of the
    candidates, so that each example is "in" for half of them, and compares the target's
    confidence with both populations. It does not know the target's seed or which
    candidates were its members.

    Paper: Carlini, Chien, Nasr, Song, Terzis and Tramèr, "Membership Inference Attacks
    From First Principles", IEEE S&P 2022.
    """

    name = "lira"
    Params = LiraParams

    def run(self, target: MembershipTarget, *, progress: bool = False) -> MembershipResult:
        p: LiraParams = self.params
        if target.pipeline is None:
            raise ConfigError("LiRA trains its shadow models with the target's pipeline; give "
                              "MembershipTarget(..., pipeline=fn) with fn(images, seed) -> trained model")
        shadows = run_lira(target.pipeline, target.data, p.shadows, make_generator(p.seed, "lira"), shift=p.shift,
                           progress=progress)
        phi = query_confidence(target.model, target.data, p.shift)
        scores = shadows.scores(phi, online=p.online, global_variance=p.global_variance)
        return MembershipResult(f"LiRA {'online' if p.online else 'offline'}", scores, target.truth())
