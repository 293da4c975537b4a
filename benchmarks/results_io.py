"""Reading and atomically rewriting a benchmark's results JSON (resumable benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path


def load_results(path: Path) -> dict:
    """The saved results, or an empty dict when there are none yet."""
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(path: Path, results: dict) -> None:
    """Write ``results`` so that a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)
