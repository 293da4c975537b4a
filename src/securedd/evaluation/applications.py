"""DD's two applications, scored against the DD paper's baselines on held-out pool networks.

- **Fast domain adaptation** (DD section 3.5, Table 2): networks trained on a source
  dataset (a pool made with ``securedd pool --as TARGET``) are adapted to the target
  dataset by replaying the distilled steps. Baselines: no adaptation; the same number of
  random real target images in the same steps, with the set's learned rates and with the
  best of the fixed rates :data:`FIXED_LRS`; and fine-tuning on the whole real target
  training split.
- **Fast data poisoning** (DD section 3.5, Table 3): one GD step on the distilled images
  (distilled with ``method.relabel=K:T`` on a pool of well-trained networks) should make a
  network take the attacked class K for the target class T and keep the other classes.
  The paper's three metrics: the share of class-K test images still classified as K, the
  share classified as T, and the overall accuracy with respect to the incorrect labels (K
  relabelled T). Baseline: the same number of random real images with incorrect labels
  (class K's relabelled T), in the same step, with the learned rate and with the fixed rate
  that gives the best overall accuracy w.r.t. the incorrect labels (the paper's choice).

Every arm is scored on the pool's held-out networks (never the ones the set was distilled
on), one result per network, reported as mean ± std. The baselines' "best fixed rate" is
chosen on the test split, as the paper reports it; the distilled set gets no such choice.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from securedd.artifacts import Artifact
from securedd.data.sampler import ClassBalancedSampler
from securedd.data.spec import RealData
from securedd.errors import MismatchError
from securedd.evaluation.protocols import EvalHints, ReplayHints
from securedd.rng import make_generator
from securedd.training import TrainSettings, inference_batch, replay_steps, score_model, train_model

__all__ = ["FIXED_LRS", "ApplicationReport", "Arm", "adaptation_report", "poison_scores", "poisoning_report"]

FIXED_LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
Update = Callable[[torch.nn.Module], object]  # an arm: changes a network in place (what it returns is unused)


@dataclass
class Arm:
    """One way of updating the held-out networks: its metrics per network (in %)."""

    name: str
    per_network: list[dict[str, float]] = field(default_factory=list)
    lr: float | None = None  # the fixed rate chosen, for a best-fixed-rate baseline

    def mean(self, metric: str) -> float:
        return statistics.fmean(s[metric] for s in self.per_network)

    def std(self, metric: str) -> float:
        values = [s[metric] for s in self.per_network]
        return statistics.pstdev(values) if len(values) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        metrics = list(self.per_network[0]) if self.per_network else []
        out: dict[str, Any] = {m: {"mean": round(self.mean(m), 2), "std": round(self.std(m), 2),
                                   "values": [round(s[m], 2) for s in self.per_network]} for m in metrics}
        if self.lr is not None:
            out["lr"] = self.lr
        return out


@dataclass
class ApplicationReport:
    """The arms of one application, with the metric the table leads with."""

    task: str  # "adaptation" | "poisoning"
    metrics: tuple[str, ...]
    arms: list[Arm]
    info: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, **self.info, "arms": {a.name: a.to_dict() for a in self.arms}}

    def table(self) -> str:
        """A Markdown table: one row per arm, mean ± std of each metric over the held-out networks."""
        head = "| arm | " + " | ".join(self.metrics) + " |"
        rows = [head, "|---" * (len(self.metrics) + 1) + "|"]
        for a in self.arms:
            name = f"{a.name} (lr {a.lr})" if a.lr is not None else a.name
            rows.append(f"| {name} | " + " | ".join(f"{a.mean(m):.2f} ± {a.std(m):.2f}" for m in self.metrics) + " |")
        return "\n".join(rows)


@torch.no_grad()
def poison_scores(model: torch.nn.Module, test: RealData, attacked: int, target: int,
                  batch_size: int | None = None) -> dict[str, float]:
    """The DD paper's three poisoning metrics (%) of ``model`` on ``test`` for attack K -> T."""
    model.eval()
    batch_size = batch_size or inference_batch(test.images)
    preds = torch.cat([model(test.images[i : i + batch_size]).argmax(1) for i in range(0, len(test), batch_size)])
    is_k = test.labels == attacked
    wrong = torch.where(is_k, target, test.labels)
    return {"attacked_correct": float((preds[is_k] == attacked).float().mean() * 100),
            "attacked_as_target": float((preds[is_k] == target).float().mean() * 100),
            "accuracy_wrt_incorrect_labels": float((preds == wrong).float().mean() * 100)}


def _held_out(art: Artifact) -> tuple[list[torch.nn.Module], ReplayHints]:
    """The pool's held-out networks, each loaded (and checked) once, and the set's replay hints."""
    hints = EvalHints.of(art)
    nets = hints.get_protocol().held_out_networks(hints, art.spec)
    if nets is None or not isinstance(hints.fields, ReplayHints):
        raise MismatchError("this set was not distilled on a network pool (method.init=pool): the applications "
                            "adapt or attack trained networks; distil with `securedd adapt` or `securedd poison`")
    return nets, hints.fields


def _random_real(real: RealData, ipc: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` random real images per class, class-major (the layout replay expects)."""
    return ClassBalancedSampler(real, make_generator(seed, "applications", "random-real")).balanced(ipc)


def _learned_lrs(art: Artifact) -> torch.Tensor:
    """The set's learned step sizes, which every arm replays."""
    if art.lrs is None:
        raise MismatchError("this set has no learned learning rates (lrs) to replay: the applications need a DD or "
                            "SLDD set distilled with method.init=pool")
    return art.lrs


def _run_arms(nets: list[torch.nn.Module], updates: dict[str, Update],
              score: Callable[[torch.nn.Module], dict[str, float]], progress: bool) -> dict[str, Arm]:
    arms = {name: Arm(name) for name in updates}
    bar = tqdm(total=len(nets) * len(updates), desc="applications", disable=not progress)
    for held_out in nets:
        for name, update in updates.items():
            net = copy.deepcopy(held_out)
            update(net)
            arms[name].per_network.append(score(net))
            bar.update()
    bar.close()
    return arms


def _pick_fixed(arms: dict[str, Arm], metric: str) -> Arm:
    fixed = [arms.pop(f"lr={lr}") for lr in FIXED_LRS]
    best_lr, best = max(zip(FIXED_LRS, fixed, strict=True), key=lambda t: t[1].mean(metric))
    return Arm("random real, best fixed lr", best.per_network, best_lr)


def _replay(images: torch.Tensor, labels: torch.Tensor, lrs: torch.Tensor, steps: int,
            num_classes: int) -> Update:
    return lambda net: replay_steps(net, images, labels, lrs, steps, num_classes)


def _step_arms(art: Artifact, lrs: torch.Tensor, x: torch.Tensor, y: torch.Tensor, steps: int,
               k: int) -> dict[str, Update]:
    """The distilled steps (learned rates ``lrs``), and the real images ``x, y`` in the same steps at learned and
    at each fixed rate."""
    return {"distilled": _replay(art.images, art.labels, lrs, steps, k),
            "random real, learned lrs": _replay(x, y, lrs, steps, k),
            **{f"lr={lr}": _replay(x, y, torch.full_like(lrs, lr), steps, k) for lr in FIXED_LRS}}


def adaptation_report(art: Artifact, test: RealData, real: RealData, *, finetune_epochs: int = 1, seed: int = 0,
                      progress: bool = True) -> ApplicationReport:
    """Distilled adaptation of held-out source networks to ``art``'s dataset, beside the baselines.

    Args:
        art: a DD/SLDD set distilled on the target dataset with ``method.init=pool``.
        test: the target test split; ``real``: the target training split (random real
            images and the fine-tuning baseline come from it).
        finetune_epochs: epochs of SGD (lr 0.01, momentum 0.9) on all of ``real`` for the
            "train on the full target data" baseline; 0 leaves that arm out.
    """
    nets, replay = _held_out(art)
    k, steps, ipc = test.spec.num_classes, replay.steps, len(art.images) // test.spec.num_classes
    x, y = _random_real(real, ipc, seed)
    lrs = _learned_lrs(art)
    updates: dict[str, Update] = {
        "no adaptation": lambda net: None,
        **_step_arms(art, lrs, x, y, steps, k),
    }
    if finetune_epochs > 0:
        settings = TrainSettings(epochs=finetune_epochs, weight_decay=0.0)
        updates["full target data"] = lambda net: train_model(net, real.images, real.labels, settings,
                                                               make_generator(seed, "applications", "finetune"))
    arms = _run_arms(nets, updates, lambda net: {"accuracy": score_model(net, test).accuracy}, progress)
    best = _pick_fixed(arms, "accuracy")
    order = ["no adaptation", "distilled", "random real, learned lrs"]
    listed = [arms[n] for n in order] + [best] + ([arms["full target data"]] if finetune_epochs > 0 else [])
    return ApplicationReport("adaptation", ("accuracy",), listed,
                             {"networks": len(nets), "images": len(art.images), "steps": len(lrs),
                              "finetune_epochs": finetune_epochs})


def poisoning_report(art: Artifact, test: RealData, real: RealData, *, seed: int = 0,
                     progress: bool = True) -> ApplicationReport:
    """One poisoning step on held-out trained networks, beside random real images with wrong labels.

    Args:
        art: a DD set distilled with ``method.relabel=K:T`` and ``method.init=pool``.
        test: the test split the metrics are measured on; ``real``: the training split the
            baseline's random real images come from.
    """
    fields = EvalHints.of(art).fields
    if not isinstance(fields, ReplayHints) or fields.relabel is None:
        raise MismatchError("this set was not distilled as a poisoning attack: distil with method.relabel=K:T "
                            "(`securedd poison --attack K:T`)")
    attacked, target = fields.relabel
    nets, replay = _held_out(art)
    k, steps, ipc = test.spec.num_classes, replay.steps, len(art.images) // test.spec.num_classes
    x, y = _random_real(real, ipc, seed)
    y = torch.where(y == attacked, target, y)  # real images with incorrect labels
    lrs = _learned_lrs(art)
    updates: dict[str, Update] = {
        "no attack": lambda net: None,
        **_step_arms(art, lrs, x, y, steps, k),
    }
    metrics = ("attacked_correct", "attacked_as_target", "accuracy_wrt_incorrect_labels")
    arms = _run_arms(nets, updates, lambda net: poison_scores(net, test, attacked, target), progress)
    best = _pick_fixed(arms, "accuracy_wrt_incorrect_labels")
    listed = [arms["no attack"], arms["distilled"], arms["random real, learned lrs"], best]
    return ApplicationReport("poisoning", metrics, listed,
                             {"attack": [attacked, target], "networks": len(nets), "images": len(art.images),
                              "steps": len(lrs)})
