"""Accuracy at CPU-feasible budgets: securedd beside the reference code, one evaluation for both.

For each setting METHOD:IPC:BUDGET[:DISTILLATIONS] (MNIST, ConvNet-3) this distils with
securedd and with the public reference implementation (VICO-UoE/DatasetCondensation:
``main.py`` for DC/DSA, ``main_DM.py`` for DM) at the same configuration and iteration
budget, keeps both synthetic sets at a few iteration counts on the way (``--points``), and
trains ``--runs`` fresh ConvNet-3 models on every kept set with securedd's default
evaluation protocol (REFERENCE section 2: DSA augmentation, 1000 epochs, SGD lr 0.01
dropped ten-fold half-way; ``securedd.training.eval_settings``), with the same seeds for both
sides. Random real images at the same IPC, evaluated the same way, are the floor.

DISTILLATIONS (default 1) independent distillations per side: securedd with seeds
0..D-1, the reference with ``--num_exp D`` (its initial images and augmentations come
from unseeded generators), random sets with seeds 0..D-1. A cell's mean and std are then
over all D x runs models, so they include the spread between distillations (at IPC 1 the
choice of initial real images alone moves accuracy by points), not only between
evaluation models; ``per_distillation`` keeps each distillation's mean.

The reference runs from a scratch copy of its checkout with harness edits only: the two
compatibility edits of ``benchmarks/speed.py`` (value-preserving), its evaluation points
set to ours, and a ``torch.save`` of its synthetic tensor next to the PNG it already writes
at each evaluation point (so the exact floats are evaluated, not an 8-bit picture). Its
own evaluation is switched off with ``--num_eval 0``. The reference counts iterations as
"updates done before this point", and so do the points here.

Usage:
    python benchmarks/accuracy.py --reference PATH/TO/DatasetCondensation --data-root $SECUREDD_DATA
    python benchmarks/accuracy.py ... --settings dc:1:100 --points 2 --runs 3
    python benchmarks/accuracy.py ... --settings dsa:1:100:3 --runs 1   # 3 distillations a side
    python benchmarks/accuracy.py --render      # table and plot from the saved JSON

Results go to benchmarks/results/accuracy.json (resumable per setting and side), the
plot to docs/images/accuracy_vs_iterations.png. The wall seconds it records are not a
timing benchmark (the reference's include data loading and one extra iteration; other
work may have shared the machine): ``benchmarks/speed.py`` measures speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import finish_accuracy_axes, load_results, save_figure, save_results  # noqa: E402
from speed import MNIST_DSA, prepare_reference, reference_command, reference_script  # noqa: E402

RESULTS = HERE / "results" / "accuracy.json"
PLOT = HERE.parent / "docs" / "images" / "accuracy_vs_iterations.png"
EVAL_POOL = re.compile(r"eval_it_pool = np\.arange\(0, args\.Iteration\+1, \d+\)\.tolist\(\)")
SAVE_NAME = re.compile(r"^(\s*)(save_name = os\.path\.join\(args\.save_path, 'vis_.*\)\n)", re.M)


def points_of(budget: int, points: int) -> list[int]:
    """``points`` evenly spaced iteration counts up to ``budget`` (0, the initial set, not included)."""
    if budget % points:
        raise SystemExit(f"the budget ({budget}) must be a multiple of --points ({points})")
    return [budget * k // points for k in range(1, points + 1)]


def distill_ours(method: str, ipc: int, budget: int, points: list[int], data_root: str,
                 seed: int = 0) -> tuple[dict, float]:
    """securedd's synthetic images at each point, and the distillation's seconds."""
    import torch

    from securedd import RunConfig, apply_overrides
    from securedd.data import load_dataset
    from securedd.distill import run_method

    real = load_dataset("mnist", "train", root=data_root)
    overrides = ['data.name="mnist"', f'method.name="{method}"', f"method.ipc={ipc}",
                 f"method.iterations={budget}", "method.compile=true", f"seed={seed}"]
    if method in ("dsa", "dm"):
        overrides.append(f'method.dsa_strategy="{MNIST_DSA}"')
    cfg = apply_overrides(RunConfig(), overrides)
    kept: dict[int, torch.Tensor] = {}

    def keep(it: int, loss: float, syn) -> None:  # type: ignore[no-untyped-def]
        if it + 1 in points:
            kept[it + 1] = syn.images.detach().clone()

    start = time.perf_counter()
    run_method(cfg, real, progress=True, callbacks=(keep,))
    return kept, time.perf_counter() - start


def distill_reference(reference: str, method: str, ipc: int, budget: int, points: list[int],
                      data_root: str, experiments: int = 1) -> tuple[list[dict], float]:
    """Per experiment, the reference's synthetic images at each point; its wall seconds (data loading included)."""
    import torch

    step = points[0]  # evenly spaced from 0: the reference saves at every multiple of it
    with tempfile.TemporaryDirectory() as save, tempfile.TemporaryDirectory() as code:
        prepare_reference(reference, code)
        script = reference_script(method)
        path = Path(code) / script
        text, n_pool = EVAL_POOL.subn(f"eval_it_pool = np.arange(0, args.Iteration+1, {step}).tolist()",
                                      path.read_text())
        text, n_save = SAVE_NAME.subn(
            r"\1\2\1torch.save(image_syn.detach().cpu().clone(), save_name[:-4] + '.pt')\n", text)
        if (n_pool, n_save) != (1, 1):
            raise SystemExit(f"{script} does not look like the expected reference code ({n_pool}, {n_save} edits)")
        path.write_text(text)
        cmd = reference_command(method, ipc, budget, data_root, save, experiments)
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=code, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"the reference failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        kept: list[dict] = [{} for _ in range(experiments)]
        for exp in range(experiments):
            for p in points:
                found = list(Path(save).glob(f"vis_*_exp{exp}_iter{p}.pt"))
                if len(found) != 1:
                    raise RuntimeError(f"the reference left {len(found)} tensors for experiment {exp}, "
                                       f"iteration {p} in {save}")
                kept[exp][p] = torch.load(found[0], weights_only=True)
    return kept, seconds


def random_set(ipc: int, data_root: str, seed: int = 0):  # type: ignore[no-untyped-def]
    from securedd import RunConfig, apply_overrides
    from securedd.data import load_dataset
    from securedd.distill import run_method

    real = load_dataset("mnist", "train", root=data_root)
    cfg = apply_overrides(RunConfig(), ['data.name="mnist"', 'method.name="random"', f"method.ipc={ipc}", f"seed={seed}"])
    return run_method(cfg, real, progress=False).synthetic.images.detach().clone()


def evaluate(images, ipc: int, runs: int, data_root: str) -> dict:  # type: ignore[no-untyped-def]
    """``runs`` fresh ConvNet-3 models trained on ``images`` (class-major, ``ipc`` per class)."""
    import torch

    from securedd.config import EvalConfig
    from securedd.data import load_dataset
    from securedd.evaluation.train_eval import evaluate_set
    from securedd.training import eval_settings

    test = load_dataset("mnist", "test", root=data_root)
    labels = torch.arange(10).repeat_interleave(ipc)
    settings = eval_settings(EvalConfig(), test.spec.dsa_strategy)
    report = evaluate_set(images.float(), labels, test, runs=runs, settings=settings, seed=0, progress=False)
    arch = report.archs[0]
    return {"mean": round(arch.mean, 2), "std": round(arch.std, 2), "accuracies": [round(a, 2) for a in arch.accuracies],
            "seconds_per_model": round(arch.seconds_per_model, 1)}


def pooled(cells: list[dict]) -> dict:
    """One cell from the evaluations of several distillations: mean and std over every model."""
    import statistics

    accs = [a for c in cells for a in c["accuracies"]]
    return {"mean": round(statistics.fmean(accs), 2), "std": round(statistics.pstdev(accs), 2) if len(accs) > 1 else 0.0,
            "accuracies": accs, "per_distillation": [c["mean"] for c in cells],
            "seconds_per_model": round(statistics.fmean(c["seconds_per_model"] for c in cells), 1)}


def parse_setting(setting: str) -> tuple[str, int, int, int]:
    """METHOD:IPC:BUDGET[:DISTILLATIONS] -> (method, ipc, budget, distillations)."""
    parts = setting.split(":")
    if len(parts) not in (3, 4):
        raise SystemExit(f"a setting is METHOD:IPC:BUDGET[:DISTILLATIONS]; got '{setting}'")
    return parts[0], int(parts[1]), int(parts[2]), int(parts[3]) if len(parts) == 4 else 1


def render(results: dict) -> str:
    rows = ["| method | IPC | iterations | distillations x models | securedd | reference | random | "
            "securedd distil wall s | reference wall s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        if "ours" not in r or "reference" not in r:
            continue
        method, ipc, budget, runs = parse_setting(key)
        o, ref = r["ours"]["points"][str(budget)], r["reference"]["points"][str(budget)]
        rnd = r.get("random", {})
        rows.append(f"| {method} | {ipc} | {budget} | {runs} x {r['runs']} | {o['mean']:.2f} ± {o['std']:.2f} | "
                    f"{ref['mean']:.2f} ± {ref['std']:.2f} | "
                    f"{rnd.get('mean', float('nan')):.2f} ± {rnd.get('std', float('nan')):.2f} | "
                    f"{r['ours']['seconds']:.0f} | {r['reference']['seconds']:.0f} |")
    return "\n".join(rows)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [(k, r) for k, r in results.items() if "ours" in r and "reference" in r]
    if not done:
        return
    fig, axes = plt.subplots(1, len(done), figsize=(4.2 * len(done), 3.4), squeeze=False)
    for ax, (key, r) in zip(axes[0], done, strict=True):
        method, ipc, _, runs = parse_setting(key)
        for side, style, shift in (("ours", "o-", -0.01), ("reference", "s--", 0.01)):
            pts = sorted((int(k), v) for k, v in r[side]["points"].items())
            budget = max(int(k) for k in r[side]["points"])  # sides drawn a little apart, so none hides the other
            ax.errorbar([p + shift * budget for p, _ in pts], [v["mean"] for _, v in pts], yerr=[v["std"] for _, v in pts],
                        fmt=style, capsize=3, label="securedd" if side == "ours" else "reference code")
        if "random" in r:
            ax.axhline(r["random"]["mean"], color="grey", lw=1, ls=":", label="random real")
        ax.set_title(f"MNIST {method.upper()} IPC {ipc}" + (f", {runs} distillations" if runs > 1 else ""))
        finish_accuracy_axes(ax, "iterations")
    save_figure(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", help="checkout of the reference DC/DSA/DM code")
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"), help="folder holding MNIST/raw")
    p.add_argument("--settings", default="dc:1:100,dsa:1:100,dm:10:300", help="method:ipc:budget,...")
    p.add_argument("--points", type=int, default=2, help="evaluate at this many evenly spaced points after 0")
    p.add_argument("--runs", type=int, default=3, help="fresh models per evaluated set")
    p.add_argument("--out", type=Path, default=RESULTS, help="results JSON (default: %(default)s)")
    p.add_argument("--plot", type=Path, default=PLOT, help="accuracy-vs-iterations plot (default: %(default)s)")
    p.add_argument("--render", action="store_true", help="print the table and draw the plot from the saved JSON")
    args = p.parse_args()
    results = load_results(args.out)
    if not args.render:
        if not args.reference or not args.data_root:
            p.error("--reference and --data-root (or SECUREDD_DATA) are required")
        for setting in args.settings.split(","):
            method, ipc, budget, runs = parse_setting(setting)
            points = points_of(budget, args.points)
            entry = results.setdefault(setting, {"runs": args.runs, "iterations": points})
            for side in ("ours", "reference"):
                if side in entry:
                    continue
                if side == "ours":
                    done = [distill_ours(method, ipc, budget, points, args.data_root, seed) for seed in range(runs)]
                    distilled, seconds = [s for s, _ in done], sum(t for _, t in done)
                else:
                    distilled, seconds = distill_reference(args.reference, method, ipc, budget, points,
                                                           args.data_root, runs)
                entry[side] = {"seconds": round(seconds, 1), "points": {
                    str(p): pooled([evaluate(sets[p], ipc, entry["runs"], args.data_root) for sets in distilled])
                    for p in points}}
                print(setting, side, json.dumps(entry[side]), flush=True)
                save_results(args.out, results)
            same = [r["random"] for k, r in results.items()
                    if parse_setting(k)[1::2] == (ipc, runs) and r.get("runs") == entry["runs"] and "random" in r]
            if "random" not in entry and same:  # the same seeds draw the same random images
                entry["random"] = same[0]
            if "random" not in entry:
                entry["random"] = pooled([evaluate(random_set(ipc, args.data_root, seed), ipc, entry["runs"],
                                                   args.data_root) for seed in range(runs)])
                print(setting, "random", json.dumps(entry["random"]), flush=True)
                save_results(args.out, results)
    print(render(results))
    plot(results, args.plot)


if __name__ == "__main__":
    main()
