"""Time to accuracy: what a method reaches on a wall-clock budget, distillation plus evaluation.

One distillation runs until its budget of wall time is spent, keeping a copy of the
synthetic set at fixed times (``--snapshots``, minutes since the distillation started,
data loading excluded). Each snapshot is then evaluated with the standard protocol: 3 fresh
ConvNet-3 models, DSA, 1000 epochs, final test accuracy (``evaluate_set``'s defaults,
compilation chosen automatically). A snapshot's "total" wall time is its distillation
minutes plus its own evaluation's wall time: what a user waits for that number.

The distillation runs alone on the machine; the snapshots are evaluated one after
another afterwards. The run is resumable: the snapshots are kept (``--work``), and an
evaluated snapshot is not evaluated again. Results go to
``benchmarks/results/time_to_accuracy.json`` under a key naming the method, dataset, IPC,
budget and seed, and ``docs/images/time_to_accuracy.png`` plots accuracy against total
wall time for every key.

Usage:
    python benchmarks/time_to_accuracy.py --dataset mnist --ipc 10 --method dm --snapshots 10,20
    python benchmarks/time_to_accuracy.py --dataset cifar10 --ipc 10 --method dm --snapshots 30,60,120
    python benchmarks/time_to_accuracy.py --method dm --snapshots 15,20,25 \
        --override 'method.compile=true' --override 'method.precision="bf16"' --eval-precision bf16
    python benchmarks/time_to_accuracy.py --plot
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import cpu_model, finish_accuracy_axes, load_results, save_figure, save_results  # noqa: E402

RESULTS = HERE / "results" / "time_to_accuracy.json"
FIGURE = HERE.parent / "docs" / "images" / "time_to_accuracy.png"


class BudgetSpent(Exception):
    """Raised by the snapshot callback to end the distillation at its budget."""


def distil(args: argparse.Namespace, work: Path) -> dict:
    """Run the method, saving a snapshot at each time in ``args.snapshots``; return the run's facts."""
    import torch

    from securedd import RunConfig, apply_overrides
    from securedd.data import load_dataset
    from securedd.distill import run_method

    real = load_dataset(args.dataset, "train", root=args.data_root)
    overrides = [f'data.name="{args.dataset}"', f'method.name="{args.method}"', f"method.ipc={args.ipc}",
                 "method.iterations=1000000", f"seed={args.seed}", *args.override]
    cfg = apply_overrides(RunConfig(), overrides)
    times = sorted(args.snapshots)
    pending = list(times)
    start = time.perf_counter()
    facts: dict = {"iterations_at": {}, "overrides": overrides}

    def snapshot(it: int, loss: float, syn) -> None:  # type: ignore[no-untyped-def]
        elapsed = (time.perf_counter() - start) / 60
        while pending and elapsed >= pending[0]:
            minutes = pending.pop(0)
            torch.save({"images": syn.images.detach().clone(), "labels": syn.labels.detach().clone(),
                        "iterations": it + 1, "minutes": elapsed}, work / f"snapshot_{minutes:g}.pt")
            facts["iterations_at"][f"{minutes:g}"] = it + 1
            print(f"snapshot at {elapsed:.1f} min: {it + 1} iterations", flush=True)
        if not pending:
            raise BudgetSpent

    try:
        run_method(cfg, real, progress=False, callbacks=(snapshot,))
    except BudgetSpent:
        pass
    facts["distill_wall_s"] = round(time.perf_counter() - start, 1)
    return facts


def evaluate(args: argparse.Namespace, path: Path) -> dict:
    import torch

    from securedd.config import EvalConfig
    from securedd.data import load_dataset
    from securedd.evaluation import evaluate_set
    from securedd.training import eval_settings

    test = load_dataset(args.dataset, "test", root=args.data_root)
    saved = torch.load(path)
    start = time.perf_counter()
    report = evaluate_set(saved["images"], saved["labels"], test, runs=args.runs, seed=0, progress=False,
                          settings=eval_settings(EvalConfig(precision=args.eval_precision), test.spec.dsa_strategy))
    arch = report.archs[0]
    return {"iterations": saved["iterations"], "distill_minutes": round(saved["minutes"], 2),
            "eval_wall_s": round(time.perf_counter() - start, 1), "accuracies": [round(a, 2) for a in arch.accuracies],
            "accuracy_mean": round(arch.mean, 2), "accuracy_std": round(arch.std, 2),
            "compiled": report.protocol["compile"], "precision": report.protocol["precision"]}


def _label(key: str) -> str:
    """A legend line for a results key: method, dataset, IPC and the precisions of the two stages."""
    method, dataset, ipc = key.split("|")[:3]
    distil = "bf16" if 'precision="bf16"' in key else "fp32"
    evaluate = key.rpartition("|eval=")[2] if "|eval=" in key else "fp32"
    return f"{method.upper()} {dataset} {ipc.replace('=', ' ')}: distil {distil}, evaluate {evaluate}"


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, entry in results.items():
        points = sorted(entry.get("snapshots", {}).values(), key=lambda s: s["distill_minutes"])
        if not points:
            continue
        total = [s["distill_minutes"] + s["eval_wall_s"] / 60 for s in points]
        ax.errorbar(total, [s["accuracy_mean"] for s in points], yerr=[s["accuracy_std"] for s in points],
                    marker="o", capsize=3, label=_label(key))
    ax.axvline(30, color="grey", linestyle=":", linewidth=1)
    finish_accuracy_axes(ax, "wall minutes: distillation + evaluation (3 models, 1000 epochs)", legend_size=7)
    save_figure(fig, out, dpi=120)
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--method", default="dm")
    p.add_argument("--snapshots", type=lambda s: [float(v) for v in s.split(",")], default=[10.0, 20.0],
                   help="minutes of distillation at which to keep the set; the last is the budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=3, help="fresh models per snapshot")
    p.add_argument("--override", action="append", default=[], help="extra KEY=VALUE run-config override")
    p.add_argument("--eval-precision", choices=("fp32", "bf16"), default="fp32",
                   help="the evaluation's arithmetic (fp32: the protocol; bf16: mixed precision)")
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    p.add_argument("--work", type=Path, default=HERE / "work" / "time_to_accuracy", help="where snapshots are kept")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--plot", action="store_true", help="only redraw the figure from the saved JSON")
    args = p.parse_args()
    results = load_results(args.out)
    if args.plot:
        plot(results, FIGURE)
        return
    key = f"{args.method}|{args.dataset}|ipc={args.ipc}|budget={max(args.snapshots):g}min|seed={args.seed}"
    if args.override:
        key += "|" + ",".join(args.override)
    work = args.work / key.replace("|", "_").replace("=", "").replace(",", "_")
    work.mkdir(parents=True, exist_ok=True)
    if args.eval_precision != "fp32":  # the same snapshots, evaluated another way: their own entry
        key += f"|eval={args.eval_precision}"
    entry = results.setdefault(key, {"snapshots": {}})
    if not all((work / f"snapshot_{m:g}.pt").exists() for m in args.snapshots):
        entry["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_1min_before": os.getloadavg()[0]}
        entry.update(distil(args, work))
        save_results(args.out, results)
    for minutes in sorted(args.snapshots):
        name = f"{minutes:g}"
        if name in entry["snapshots"]:
            continue
        entry["snapshots"][name] = {**evaluate(args, work / f"snapshot_{name}.pt"),
                                    "load_1min_before": os.getloadavg()[0]}
        print(key, name, json.dumps(entry["snapshots"][name]), flush=True)
        save_results(args.out, results)
    plot(results, FIGURE)


if __name__ == "__main__":
    main()
