"""Reading and atomically rewriting a benchmark's results JSON (resumable benchmarks)."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from collections.abc import Callable
from pathlib import Path


def cpu_model() -> str:
    """The processor's model name (Linux), for the machine line of a results file."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_results(path: Path) -> dict:
    """The saved results, or an empty dict when there are none yet."""
    return json.loads(path.read_text()) if path.exists() else {}


def side_by_side_results(parser: argparse.ArgumentParser, args: argparse.Namespace,
                         render: Callable[[dict], str]) -> dict | None:
    """The saved results of a securedd-beside-the-reference benchmark, or ``None`` after ``--render``
    printed them; exits through ``parser`` when ``--reference`` or ``--data-root`` is missing."""
    results = load_results(args.out)
    if args.render:
        print(render(results))
        return None
    if not args.reference or not args.data_root:
        parser.error("--reference and --data-root (or SECUREDD_DATA) are required")
    return results


def save_results(path: Path, results: dict) -> None:
    """Write ``results`` so that a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)


def seed_spread(results: dict, value: Callable[[dict], float | None], seed_prefix: str,
                columns: tuple[str, str, str]) -> str:
    """A markdown table of mean ± std of ``value(entry)`` over entries whose keys (``|``-joined
    case, budget and options) differ only in the part starting with ``seed_prefix``; ``columns``
    names the budget, the options and the per-entry figure. Empty when no two entries group."""
    groups: dict[str, list[float]] = {}
    for key, entry in results.items():
        v = value(entry)
        if v is not None:
            common = "|".join(part for part in key.split("|") if not part.startswith(seed_prefix))
            groups.setdefault(common, []).append(v)
    budget, options, figure = columns
    rows = [f"| case | {budget} | {options} | starting networks | {figure} per network | mean ± std |",
            "|---|---|---|---|---|---|"]
    for common, values in groups.items():
        if len(values) > 1:
            case, amount, *extra = common.split("|")
            rows.append(f"| {case} | {amount} | {' '.join(extra) or '-'} | {len(values)} | "
                        f"{', '.join(f'{v:.2f}' for v in values)} | {statistics.mean(values):.2f} ± "
                        f"{statistics.stdev(values):.2f} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def finish_accuracy_axes(ax, xlabel: str, legend_size: int = 8) -> None:  # type: ignore[no-untyped-def]
    """The accuracy plots' common axes: ``xlabel``, test accuracy on y, a light grid, a legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def save_figure(fig, path: Path, dpi: int = 110) -> None:  # type: ignore[no-untyped-def]
    """Lay out ``fig`` and write it to ``path`` (its folder made if missing)."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
