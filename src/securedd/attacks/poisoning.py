"""DD's fast data poisoning: one GD step on a few distilled images makes a trained network take class K for T.

The crafting is a distillation (DD with ``method.relabel=K:T`` on a pool of trained
networks, ``method.init=pool``: ``securedd poison``); the delivery and its scoring against
the DD paper's baselines live in :func:`securedd.evaluation.applications.poisoning_report`.
This module gives them the attack contract: :class:`Poisoning` (``poisoning``) applies a
crafted set to the pool's held-out networks (:class:`PoisoningTarget`) and returns a
:class:`PoisoningResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from securedd.artifacts import Artifact
from securedd.attacks.base import ATTACKS, Attack, AttackResult
from securedd.data.spec import RealData
from securedd.evaluation.applications import ApplicationReport, poisoning_report

__all__ = ["Poisoning", "PoisoningParams", "PoisoningResult", "PoisoningTarget"]


@dataclass(frozen=True)
class PoisoningTarget:
    """A poisoning set and the data its victims are scored with.

    ``artifact``: a DD set distilled with ``method.relabel=K:T`` and ``method.init=pool``
    (its held-out pool networks are the victims). ``test``: the split the metrics are
    measured on. ``train``: the split the baseline's random real images come from.
    """

    artifact: Artifact
    test: RealData
    train: RealData


@dataclass(frozen=True)
class PoisoningParams:
    """The baseline's draw."""

    seed: int = 0
    """Seed of the random real images of the baseline arms."""


@dataclass
class PoisoningResult(AttackResult):
    """The arms of the poisoning table (:class:`~securedd.evaluation.applications.ApplicationReport`)."""

    report: ApplicationReport

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()

    def table(self) -> str:
        """The Markdown table, one row per arm."""
        return self.report.table()

    @property
    def summary(self) -> str:
        arms = {a.name: a for a in self.report.arms}
        k, t = self.report.info["attack"]
        hit, before = arms["distilled"], arms["no attack"]
        n = int(self.report.info["networks"])
        return (f"one step on the set: class {k} taken for {t} in {hit.mean('attacked_as_target'):.1f}% of its test "
                f"images ({before.mean('attacked_as_target'):.1f}% before), accuracy w.r.t. the incorrect labels "
                f"{hit.mean('accuracy_wrt_incorrect_labels'):.1f}% ({before.mean('accuracy_wrt_incorrect_labels'):.1f}%"
                f" before), over {n} held-out network{'s' if n != 1 else ''}")


@ATTACKS.register("poisoning")
class Poisoning(Attack[PoisoningTarget, PoisoningResult]):
    """Fast data poisoning: a few distilled images whose one GD step makes a network take class K for T.

    Threat model: the attacker can train networks like the victim's (the architecture and
    task, with their own training data: the pool the set is distilled on) and crafts a
    handful of labelled images and a step rate. The victim is a well-trained network of
    the same kind, whose individual weights the attacker never saw (a held-out pool
    network), and takes one gradient step on the crafted images. Success: the victim
    classifies class K as T and keeps the other classes. The baseline attacker instead
    feeds random real images with class K relabelled T.

    Paper: Wang, Zhu, Torralba and Efros, "Dataset Distillation", arXiv:1811.10959 (2018),
    section 3.5 and Table 3.
    """

    name = "poisoning"
    Params = PoisoningParams

    def run(self, target: PoisoningTarget, *, progress: bool = False) -> PoisoningResult:
        return PoisoningResult(poisoning_report(target.artifact, target.test, target.train, seed=self.params.seed,
                                                progress=progress))
