"""The audit as files: ``audit.json`` (validated by :data:`AUDIT_SCHEMA`), ``audit.md`` and a
self-contained ``audit.html`` (figures embedded as data URIs), next to the artifact.

Both readable reports open with the summary table (each aspect beside the full-data
reference), then give one section per stage with its plots, and name the artifact's
hash, method, dataset and privacy ledger.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from securedd.audit.suite import Audit
from securedd.store import atomic_write_bytes

__all__ = ["AUDIT_SCHEMA", "to_html", "to_markdown", "write_report"]

_ROW = {"type": "object", "required": ["aspect", "metric"],
        "properties": {"aspect": {"type": "string"}, "metric": {"type": "string"}}}
AUDIT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema", "artifact", "config", "summary", "sections", "figures", "seconds"],
    "properties": {
        "schema": {"const": "securedd-audit/1"},
        "artifact": {"type": "object", "required": ["sha256", "method", "dataset", "images", "ipc"],
                     "properties": {"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                    "method": {"type": "string"}, "dataset": {"type": "string"},
                                    "images": {"type": "integer", "minimum": 1},
                                    "ipc": {"type": "integer", "minimum": 1}}},
        "config": {"type": "object", "required": ["stages", "models", "runs"]},
        "summary": {"type": "array", "items": _ROW, "minItems": 1},
        "sections": {"type": "object", "properties": {
            "utility": {"type": "object", "required": ["models", "reference_accuracy"]},
            "privacy": {"type": "object", "required": ["distilled", "reference"]},
            "robustness": {"type": "object", "required": ["norm", "epsilons", "distilled", "reference"],
                           "properties": {"epsilons": {"type": "array", "items": {"type": "number", "minimum": 0}},
                                          "distilled": {"type": "array", "items": {"type": "number"}},
                                          "reference": {"type": "array", "items": {"type": "number"}}}},
            "memorisation": {"type": "object", "required": ["near_copy_share", "per_image"]},
            "fairness": {"type": "object", "required": ["per_class_accuracy", "accuracy_variance"]}}},
        "figures": {"type": "array", "items": {"type": "string"}},
        "seconds": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}

_TITLES = {"utility": "Utility: accuracy across architectures", "privacy": "Privacy: membership inference",
           "robustness": "Robustness: accuracy under DeepFool",
           "memorisation": "Memorisation: nearest real images", "fairness": "Fairness across classes"}
_CAPTIONS = {"roc": "ROC of the loss-threshold membership attack (log axes)",
             "robustness": "Test accuracy under DeepFool as the perturbation budget grows",
             "closest_pairs": "The distilled images closest to a real training image, above that image",
             "per_class": "Per-class test accuracy, distilled vs full-data reference",
             "tsne": "t-SNE of real test images and distilled images in the reference's feature space"}
_FIGURES = {"privacy": ["roc"], "robustness": ["robustness"], "memorisation": ["closest_pairs"], "fairness": ["per_class", "tsne"]}


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def _section_rows(stage: str, body: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A stage's findings as a header and table rows."""
    if stage == "utility":
        rows = [[m["model"], str(m["runs"]), f"{m['accuracy_mean']:.2f} ± {m['accuracy_std']:.2f}",
                 f"{m['seconds_per_model']:.1f}"] for m in body["models"]]
        rows.append(["full-data reference (ConvNet-3)", "1", f"{body['reference_accuracy']:.2f}", "–"])
        return ["model", "runs", "test accuracy (%)", "s / model"], rows
    if stage == "privacy":
        return (["model attacked", "AUC", "TPR @ 0.1% FPR", "TPR @ 1% FPR", "members / non-members"],
                [[name, f"{r['auc']:.4f}", f"{r['tpr@0.1%FPR']:.4f}", f"{r['tpr@1%FPR']:.4f}",
                  f"{r['members']} / {r['non_members']}"]
                 for name, r in (("trained on the distilled set", body["distilled"]),
                                 ("full-data reference", body["reference"]))])
    if stage == "robustness":
        return (["model", *[f"eps {e:g}" for e in body["epsilons"]]],
                [[name, *[f"{v:.1f}" for v in body[key]]]
                 for name, key in (("trained on the distilled set", "distilled"), ("full-data reference", "reference"))])
    if stage == "memorisation":
        return (["mean L2 to nearest", "mean SSIM", "max SSIM", f"near-copies (SSIM >= {body['near_copy_ssim']})"],
                [[f"{body['mean_distance']:.3f}", f"{body['mean_ssim']:.3f}", f"{body['max_ssim']:.3f}",
                  f"{100 * body['near_copy_share']:.1f}%"]])
    names = body["classes"]
    return (["class", *names],
            [["accuracy (%)", *[f"{v:.1f}" for v in body["per_class_accuracy"]]],
             ["reference (%)", *[f"{v:.1f}" for v in body["reference_per_class_accuracy"]]],
             ["normalised", *[f"{v:.2f}" for v in body["normalised_per_class_accuracy"]]],
             ["loss", *[f"{v:.3f}" for v in body["per_class_loss"]]]])


def _header(audit: Audit) -> list[tuple[str, str]]:
    a = audit.artifact
    ledger = a.get("privacy_ledger") or {}
    spent = (f"epsilon {ledger['epsilon']:.2f} at delta {ledger['delta']:g} ({ledger.get('mechanism')})"
             if "epsilon" in ledger else (ledger.get("mechanism") or "none recorded"))
    return [("artifact", a.get("path") or "(in memory)"), ("sha256", a["sha256"]), ("method", a["method"]),
            ("dataset", a["dataset"]), ("images", f"{a['images']} ({a['ipc']} per class)"), ("privacy ledger", spent)]


def _stage_note(stage: str, body: dict[str, Any]) -> str:
    if stage == "utility" and body.get("skipped"):
        return f"Not run (the images do not fit them): {', '.join(body['skipped'])}."
    if stage == "robustness":
        return (f"DeepFool ({body['norm']}, pixels in [0, 1]) on {body['samples']} test images; accuracy in %. "
                "An image counts when it is classified correctly and DeepFool needs more than the budget.")
    if stage == "fairness":
        return (f"Variance of per-class accuracy: {body['accuracy_variance']:.2f} (reference "
                f"{body['reference_accuracy_variance']:.2f}); of per-class loss: {body['loss_variance']:.4f}. "
                "Lower is fairer.")
    return ""


def to_markdown(audit: Audit, figure_names: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``figure_names`` maps figures to PNG files written beside it."""
    lines = ["# Audit of a distilled set", ""]
    lines += [f"- **{k}**: `{v}`" if k in ("sha256", "artifact") else f"- **{k}**: {v}" for k, v in _header(audit)]
    lines += ["", "## Summary", "", "| aspect | metric | distilled | full-data reference |", "|---|---|---|---|"]
    lines += [f"| {r['aspect']} | {r['metric']} | {_cell(r.get('distilled'))} | {_cell(r.get('reference'))} |"
              for r in audit.summary]
    for stage, body in audit.sections.items():
        head, rows = _section_rows(stage, body)
        lines += ["", f"## {_TITLES[stage]}", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        if note := _stage_note(stage, body):
            lines += ["", note]
        for fig in _FIGURES.get(stage, []):
            if figure_names and fig in figure_names:
                lines += ["", f"![{_CAPTIONS[fig]}]({figure_names[fig]})"]
    lines += ["", "Stage times (s): " + ", ".join(f"{k} {v}" for k, v in audit.seconds.items()), ""]
    return "\n".join(lines)


def to_html(audit: Audit) -> str:
    """The report as one self-contained HTML page (figures embedded)."""
    esc = html.escape

    def table(head: list[str], rows: list[list[str]]) -> str:
        th = "".join(f"<th>{esc(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>securedd audit</title><style>",
             "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}",
             "table{border-collapse:collapse;margin:.8rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;",
             "text-align:left}th{background:#f2f2f2}code{font-size:.85em}figure{margin:1rem 0}",
             "figcaption{font-size:.9em;color:#555}img{max-width:100%}</style></head><body>",
             "<h1>Audit of a distilled set</h1><dl>"]
    parts += [f"<dt>{esc(k)}</dt><dd><code>{esc(v)}</code></dd>" for k, v in _header(audit)]
    parts += ["</dl><h2 id='summary'>Summary</h2>",
              table(["aspect", "metric", "distilled", "full-data reference"],
                    [[r["aspect"], r["metric"], _cell(r.get("distilled")), _cell(r.get("reference"))]
                     for r in audit.summary])]
    for stage, body in audit.sections.items():
        parts.append(f"<h2 id='{stage}'>{esc(_TITLES[stage])}</h2>")
        parts.append(table(*_section_rows(stage, body)))
        if note := _stage_note(stage, body):
            parts.append(f"<p>{esc(note)}</p>")
        for fig in _FIGURES.get(stage, []):
            if fig in audit.figures:
                data = base64.b64encode(audit.figures[fig]).decode()
                parts.append(f"<figure><img alt='{esc(_CAPTIONS[fig])}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{esc(_CAPTIONS[fig])}</figcaption></figure>")
    parts.append("<p>Stage times (s): " + esc(", ".join(f"{k} {v}" for k, v in audit.seconds.items())) + "</p>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(audit: Audit, folder: str | Path) -> dict[str, Path]:
    """Write ``audit.json``, ``audit.md`` (with its PNGs) and ``audit.html`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for name, png in audit.figures.items():
        names[name] = f"audit_{name}.png"
        atomic_write_bytes(folder / names[name], png)
    files = {"json": folder / "audit.json", "md": folder / "audit.md", "html": folder / "audit.html"}
    atomic_write_bytes(files["json"], json.dumps(audit.to_dict(), indent=1).encode())
    atomic_write_bytes(files["md"], to_markdown(audit, names).encode())
    atomic_write_bytes(files["html"], to_html(audit).encode())
    return files
