"""Doorping: K malicious SFDD workers plant a backdoor in the shared set, scored by CTA and ASR.

The malicious worker's mechanics (the trigger, its re-optimisation, the stamped shard)
live in :mod:`securedd.federated.doorping`, which the federated client uses; this module
gives the experiment the attack contract: :class:`DoorpingAttack` (``doorping``) runs a
federation (:class:`DoorpingTarget`) with the first K workers malicious, all clients in
this process over the federation's own server loop, then trains fresh networks on the
final set and scores them: clean test accuracy (CTA) and the attack success rate (ASR)
with worker 0's final trigger.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from securedd.artifacts import Artifact
from securedd.attacks.base import ATTACKS, Attack, AttackResult
from securedd.config import EvalConfig
from securedd.data import dataset_spec, load_dataset
from securedd.data.spec import RealData
from securedd.errors import ConfigError
from securedd.federated.apps import run_in_process
from securedd.federated.doorping import Doorping, attack_success, stamp, trigger_mask, trigger_pixels
from securedd.federated.settings import FederationSettings
from securedd.models import MODELS, create_model
from securedd.rng import make_generator
from securedd.training import TrainSettings, eval_settings, score_model, train_model

__all__ = ["DoorpingAttack", "DoorpingParams", "DoorpingResult", "DoorpingTarget", "save_trigger"]


@dataclass(frozen=True)
class DoorpingTarget:
    """The federation the attackers join, and the test split its set is scored on.

    ``settings.doorping`` is replaced by the attack's; the run writes its artifact to
    ``settings.out`` (and resumes from a checkpoint there, if one exists). ``test``:
    ``None`` loads the test split of the federation's dataset.
    """

    settings: FederationSettings
    test: RealData | None = None


@dataclass(frozen=True)
class DoorpingParams(Doorping):
    """The attackers' settings (:class:`~securedd.federated.doorping.Doorping`: workers
    0..malicious-1 stamp ``rate`` of their shard and relabel it to ``target``; ``lr``,
    ``steps``, ``stop`` and ``boost`` drive the trigger's re-optimisation) and the scoring."""

    models: int = 3
    """Fresh networks trained on the final set for scoring."""
    model: str = "convnet"
    epochs: int | None = None
    """Their training epochs (None: the evaluation protocol's, 1000 with DSA, 300 without)."""
    dsa: bool = True

    def __post_init__(self) -> None:
        if self.malicious is not None and self.malicious < 1:
            raise ConfigError(f"Doorping needs at least one malicious worker; got malicious={self.malicious}")
        if not 0 < self.rate <= 1 or self.lr <= 0 or self.steps < 1 or self.boost <= 0 or self.target < 0:
            raise ConfigError(f"Doorping needs 0 < rate <= 1, lr > 0, steps >= 1, boost > 0 and target >= 0; got "
                              f"rate={self.rate}, lr={self.lr}, steps={self.steps}, boost={self.boost}, "
                              f"target={self.target}")
        if self.models < 1 or (self.epochs is not None and self.epochs < 1):
            raise ConfigError(f"scoring needs models >= 1 and epochs >= 1; got models={self.models}, "
                              f"epochs={self.epochs}")
        MODELS.get(self.model)

    def doorping(self) -> Doorping:
        """The malicious workers' settings."""
        return Doorping(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Doorping)})

    def train_settings(self, dsa_strategy: str) -> TrainSettings:
        """The evaluation protocol the scoring networks are trained with."""
        return eval_settings(EvalConfig(epochs=self.epochs, dsa=self.dsa), dsa_strategy)


@dataclass
class DoorpingResult(AttackResult):
    """CTA and ASR (%) of each scoring network, the final set and worker 0's trigger."""

    per_model: list[dict[str, float]]
    clients: int
    workers: int
    target_class: int
    artifact: Artifact
    trigger: torch.Tensor

    def mean(self, metric: str) -> float:
        """Mean of ``metric`` (``cta``, ``asr`` or ``asr_inclusive``) over the scoring networks."""
        return statistics.fmean(row[metric] for row in self.per_model)

    def to_dict(self) -> dict[str, Any]:
        metrics = list(self.per_model[0])
        return {"clients": self.clients, "malicious": self.workers, "target": self.target_class,
                "artifact": str(self.artifact.path) if self.artifact.path else None, "sha256": self.artifact.sha256,
                **{f"{m}_mean": round(self.mean(m), 2) for m in metrics},
                **{f"{m}_std": round(statistics.pstdev(r[m] for r in self.per_model), 2) for m in metrics},
                "per_model": self.per_model}

    @property
    def summary(self) -> str:
        return (f"{self.workers} of {self.clients} workers malicious: clean test accuracy {self.mean('cta'):.2f}%, "
                f"attack success rate {self.mean('asr'):.2f}% (class {self.target_class}; "
                f"{len(self.per_model)} network{'s' if len(self.per_model) != 1 else ''} trained on the set)")


@ATTACKS.register("doorping")
class DoorpingAttack(Attack[DoorpingTarget, DoorpingResult]):
    """Backdoor the federated set: malicious workers distil a trigger into it (Doorping).

    Threat model: K of the federation's workers are malicious and collude only by running
    the same attack; each controls its own shard and its local computation, sees the
    shared set ``S^g`` each round like any worker, and sends a well-formed update. They
    know the protocol and the target class, not the other workers' data or the server's
    aggregation beyond the protocol. Each stamps a trigger on a share of its shard,
    relabels those images to the target class, and re-optimises the trigger whenever its
    network changes. Success: networks trained on the final set keep their clean test
    accuracy (CTA) and take stamped test images for the target class (ASR).

    Paper: Liu, Li, Backes, Shen and Zhang, "Backdoor Attacks Against Dataset
    Distillation", NDSS 2023, run by SFDD workers as in Arazzi et al., "Secure Federated
    Data Distillation" (2025).
    """

    name = "doorping"
    Params = DoorpingParams

    def run(self, target: DoorpingTarget, *, progress: bool = False) -> DoorpingResult:
        p: DoorpingParams = self.params
        settings = dataclasses.replace(target.settings, doorping=p.doorping(), progress=progress)
        cfg = settings.config
        workers = p.doorping().count(settings.clients)
        if workers < 1:
            raise ConfigError(f"Doorping needs at least one malicious worker; {settings.clients} clients give "
                              f"(clients - 1) // 2 = 0: set malicious=1 or use more clients")
        classes = dataset_spec(cfg.data.name, root=cfg.data.root, skip_bad_images=cfg.data.skip_bad_images).num_classes
        if not 0 <= p.target < classes:
            raise ConfigError(f"the target class must be in 0..{classes - 1}; got target={p.target}")
        states: dict[int, dict[str, torch.Tensor]] = {}
        art = run_in_process(settings, states)
        trigger = states.get(0, {}).get("trigger")
        if trigger is None:
            raise ConfigError(f"worker 0 ran no round in this process (the federation resumed from "
                              f"{settings.checkpoint}), so its trigger is unknown; delete it and {settings.out}, "
                              "and run again")
        spec = art.spec
        test = target.test if target.test is not None else load_dataset(
            cfg.data.name, "test", root=cfg.data.root, download=cfg.data.download, spec=spec,
            skip_bad_images=cfg.data.skip_bad_images)
        train_settings = p.train_settings(spec.dsa_strategy)
        rows = []
        for k in range(p.models):
            gen = make_generator(cfg.seed, "sfdd-doorping-eval", k)
            net = create_model(p.model, spec.shape, spec.num_classes, generator=gen)
            train_model(net, art.images.float(), art.labels, train_settings, gen)
            found = attack_success(net, test, trigger, trigger_mask(spec), p.target)
            rows.append({"cta": score_model(net, test).accuracy, **found})
        return DoorpingResult(rows, settings.clients, workers, p.target, art, trigger)


def save_trigger(test: RealData, trigger: torch.Tensor, path: str | Path) -> Path:
    """PNG: the first test image of each class (top) above the same image stamped with ``trigger``.

    The trigger is a 2x2 patch one pixel in from the bottom-right corner; the caption gives
    its pixel values (channel means; outside [0, 1] for an unbounded trigger, which the
    pictures clamp).
    """
    from securedd.visualize import save_pairs

    spec = test.spec
    first = [int(torch.nonzero(test.labels == c)[0]) for c in range(spec.num_classes) if bool((test.labels == c).any())]
    clean = test.images[first].float()
    stamped = stamp(clean, trigger, trigger_mask(spec))
    caption = " ".join(f"{v:.2f}" for v in trigger_pixels(trigger, spec))
    captions = [f"class {int(test.labels[i])}" + (f"\npatch {caption}" if k == 0 else "") for k, i in enumerate(first)]
    return save_pairs(spec.denormalize(clean).clamp(0, 1), spec.denormalize(stamped).clamp(0, 1), captions, path,
                      rows=("clean", "stamped"))
