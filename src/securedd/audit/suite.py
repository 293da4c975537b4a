"""``securedd audit``: utility, privacy, robustness, memorisation and fairness of one artifact, with a reference.

:func:`run_audit` trains the full-data reference (a ConvNet-3 on the whole training
split), then runs each configured stage of :data:`~securedd.audit.stages.AUDIT_STAGES`
on a shared :class:`~securedd.audit.context.AuditContext` and collects the stages'
sections, figures (PNG bytes) and summary rows into an :class:`Audit`;
:mod:`securedd.audit.report` writes it as JSON, Markdown and HTML.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from securedd.artifacts import Artifact, load_artifact
from securedd.attacks.robustness import require_foolbox
from securedd.audit.context import DEFAULT_MODELS, STAGES, AuditConfig, AuditContext
from securedd.audit.stages import AUDIT_STAGES, StageResult
from securedd.data import load_dataset
from securedd.errors import ConfigError
from securedd.evaluation.protocols import EvalHints

__all__ = ["DEFAULT_MODELS", "STAGES", "Audit", "AuditConfig", "run_audit"]


@dataclass
class Audit:
    """The audit's findings: a summary table, one section per stage, figures as PNG bytes."""

    artifact: dict[str, Any]
    config: dict[str, Any]
    summary: list[dict[str, Any]] = field(default_factory=list)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, result: StageResult) -> None:
        """Record a stage's result; its summary row updates the row of the same aspect, if there is one."""
        self.sections[stage] = result.section
        self.figures.update(result.figures)
        if result.summary is not None:
            row = next((r for r in self.summary if r["aspect"] == result.summary["aspect"]), None)
            if row is None:
                self.summary.append(dict(result.summary))
            else:
                row.update(result.summary)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "securedd-audit/1", "artifact": self.artifact, "config": self.config,
                "summary": self.summary, "sections": self.sections, "figures": sorted(self.figures),
                "seconds": self.seconds}


def run_audit(artifact: str | Path | Artifact, config: AuditConfig = AuditConfig(), *,
              data_root: str | Path | None = None, progress: bool = True, skip_bad_images: bool = False) -> Audit:
    """Run ``config.stages`` on the artifact (see :mod:`securedd.audit.stages`) and return the findings."""
    from tqdm.auto import tqdm

    if "robustness" in config.stages:
        require_foolbox()  # fail before the long stages, not after them
    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    if not EvalHints.of(art).get_protocol().fresh_models:
        raise ConfigError("the audit trains networks on the set with SGD; a DD/SLDD/SecDD set is a learned step "
                          "schedule for particular networks: audit it with securedd evaluate instead")
    spec = art.spec
    train, test = (load_dataset(spec.name, split, root=data_root, spec=spec, skip_bad_images=skip_bad_images)
                   for split in ("train", "test"))
    ctx = AuditContext(art, config, train, test, progress=progress)
    audit = Audit({"path": str(art.path) if art.path else None, "sha256": art.sha256, "method": art.method,
                   "dataset": spec.name, "images": int(art.images.shape[0]), "ipc": art.ipc,
                   "privacy_ledger": art.metadata.get("privacy")}, asdict(config))
    stages = tqdm(["reference", *config.stages], desc="audit", disable=not progress)
    for stage in stages:
        stages.set_postfix_str(stage)
        start = time.perf_counter()
        if stage == "reference":
            _, score = ctx.reference
            audit.summary.append({"aspect": "utility", "metric": "test accuracy, ConvNet-3 (%)",
                                  "reference": round(score.accuracy, 2)})
        else:
            audit.add(stage, AUDIT_STAGES.get(stage)(ctx))
        audit.seconds[stage] = round(time.perf_counter() - start, 1)
    return audit
