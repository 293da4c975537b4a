"""Writes the fuzz targets' outcome counts where ``SECUREDD_FUZZ_REPORT`` says, and prints them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.fuzz.harness import COUNTS, EXAMPLES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    report = {target: dict(counts) for target, counts in sorted(COUNTS.items())}
    terminalreporter.write_sep("-", f"fuzz outcomes (budget {EXAMPLES} examples per target)")
    for target, counts in report.items():
        terminalreporter.write_line(f"{target:<22} " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    path = os.environ.get("SECUREDD_FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps(report, indent=1) + "\n")
