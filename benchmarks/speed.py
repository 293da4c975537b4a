"""Seconds per distillation iteration and peak memory: securedd beside the reference code.

Runs DC, DSA and DM on MNIST with ConvNet-3 at the given IPCs, each as a fresh process,
one after the other on the same machine: first securedd, then the public reference
implementation of the same method (VICO-UoE/DatasetCondensation, `main.py` for DC/DSA and
`main_DM.py` for DM) at the identical configuration (the IPC's outer/inner loops, real
batch 256, image lr/momentum, init, DSA strategy). The reference runs from a scratch copy
of the checkout with two compatibility edits, both value-preserving: its siamese
augmentation writes a tensor's first row into the whole tensor (``x[:] = x[0]``), which
current PyTorch refuses as an overlapping write, so the copy clones the right-hand side;
and its networks flatten features with ``view``, which current PyTorch refuses on the
non-contiguous tensors its augmentation now returns, so the copy uses ``reshape``. Its evaluation is
switched off with ``--num_eval 0``.

Timing: securedd reports a timestamp after every iteration (a callback); the reference
prints a line after iteration 0 and every 10th, read as it arrives. Per-iteration seconds
are the median over the timed iterations after the first (the first includes one-off
costs such as compilation, reported separately). Peak memory is the process's peak
resident set (``ru_maxrss`` from ``wait4``; the parent imports no torch, so it adds nothing),
data loading included for both. ``--pairs N`` runs N interleaved pairs (securedd, reference,
securedd, ...) per setting; the table gives medians and the per-pair speed-up range.

Usage:
    python benchmarks/speed.py --reference PATH/TO/DatasetCondensation --data-root $SECUREDD_DATA
    python benchmarks/speed.py --reference ... --settings dm:10,dc:1 --iterations 11

Results go to benchmarks/results/speed.json (resumable: finished settings are kept) and a
Markdown table is printed; --render prints the table from the JSON alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import cpu_model, save_results, side_by_side_results  # noqa: E402

RESULTS = HERE / "results" / "speed.json"
MNIST_DSA = "color_crop_cutout_scale_rotate"  # digits: no flip (REFERENCE section 2)


def _run(cmd: list[str], cwd: str | None = None) -> tuple[list[tuple[float, str]], float, int]:
    """Run ``cmd``; return (arrival time, line) for each stdout line, wall seconds, peak RSS (MiB)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - start, line.rstrip("\n")))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(text for _, text in lines[-30:])
        raise RuntimeError(f"{' '.join(cmd)} failed with {proc.returncode}:\n{tail}")
    return lines, wall, usage.ru_maxrss // 1024


def run_ours(method: str, ipc: int, iterations: int, data_root: str, compile_: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__)), "--child", method, str(ipc), str(iterations),
           "--data-root", data_root] + (["--compile"] if compile_ else [])
    lines, wall, rss = _run(cmd)
    stamps = json.loads(next(text for _, text in lines if text.startswith("{")))["stamps"]
    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return {"first_s": steps[0], "per_iter_s": statistics.median(steps[1:]) if len(steps) > 1 else steps[0],
            "timed": len(steps) - 1 if len(steps) > 1 else 1, "peak_rss_mib": rss, "wall_s": wall}


def child(method: str, ipc: int, iterations: int, data_root: str, compile_: bool) -> None:
    from securedd import RunConfig, apply_overrides
    from securedd.data import load_dataset
    from securedd.distill import run_method

    real = load_dataset("mnist", "train", root=data_root)
    overrides = ['data.name="mnist"', f'method.name="{method}"', f"method.ipc={ipc}",
                 f"method.iterations={iterations}", f"method.compile={'true' if compile_ else 'false'}"]
    if method in ("dsa", "dm"):
        overrides.append(f'method.dsa_strategy="{MNIST_DSA}"')
    cfg = apply_overrides(RunConfig(), overrides)
    stamps = [time.perf_counter()]
    run_method(cfg, real, progress=False, callbacks=(lambda it, loss, syn: stamps.append(time.perf_counter()),))
    print(json.dumps({"stamps": stamps}))


SELF_ROW_WRITE = re.compile(r"^(\s*)(\w+)\[:\] = \2\[0\]\s*$", re.M)


def prepare_reference(reference: str, scratch: str) -> int:
    """Copy the reference's Python files into ``scratch`` and apply the overlap fix; return edits."""
    for path in Path(reference).glob("*.py"):
        shutil.copy(path, scratch)
    utils = Path(scratch) / "utils.py"
    text, edits = SELF_ROW_WRITE.subn(r"\1\2[:] = \2[0].clone()", utils.read_text())
    utils.write_text(text)
    networks = Path(scratch) / "networks.py"
    text, more = re.subn(r"\.view\((\w+)\.size\(0\), -1\)", r".reshape(\1.size(0), -1)", networks.read_text())
    networks.write_text(text)
    return edits + more


def reference_script(method: str) -> str:
    return "main_DM.py" if method == "dm" else "main.py"


def reference_command(method: str, ipc: int, iterations: int, data_root: str, save: str,
                      experiments: int = 1) -> list[str]:
    """The reference's command line for MNIST/ConvNet at our configuration, its evaluation off.

    ``experiments``: independent distillations in one process (the reference's ``--num_exp``).
    """
    if method == "dm":
        cmd = [sys.executable, reference_script(method), "--dataset", "MNIST", "--model", "ConvNet", "--ipc", str(ipc),
               "--init", "real", "--dsa_strategy", MNIST_DSA]
    else:
        cmd = [sys.executable, reference_script(method), "--method", method.upper(), "--dataset", "MNIST",
               "--model", "ConvNet", "--ipc", str(ipc), "--init", "noise" if method == "dc" else "real"]
        if method == "dsa":
            cmd += ["--dsa_strategy", MNIST_DSA]
    return cmd + ["--Iteration", str(iterations), "--num_exp", str(experiments), "--num_eval", "0",
                  "--data_path", data_root, "--save_path", save]


def run_reference(reference: str, method: str, ipc: int, iterations: int, data_root: str) -> dict:
    """Run the reference for ``iterations`` + 1 iterations (its loop runs 0..Iteration)."""
    with tempfile.TemporaryDirectory() as save, tempfile.TemporaryDirectory() as code:
        edits = prepare_reference(reference, code)
        lines, wall, rss = _run(reference_command(method, ipc, iterations, data_root, save), cwd=code)
    begin = next(t for t, text in lines if "training begins" in text)
    marks = [(int(text.split("iter =")[1].split(",")[0]), t) for t, text in lines if "iter =" in text]
    end = next(t for t, text in lines if "Final Results" in text)
    first = marks[0][1] - begin  # iteration 0 (after a skipped, empty evaluation)
    if len(marks) > 1:  # iterations 1..10 between the lines for 0 and 10
        per = (marks[1][1] - marks[0][1]) / (marks[1][0] - marks[0][0])
        timed = marks[1][0] - marks[0][0]
    else:  # Iteration < 10: iterations 1..Iteration run between the line for 0 and the end
        per, timed = (end - marks[0][1]) / iterations, iterations
    return {"first_s": first, "per_iter_s": per, "timed": timed, "peak_rss_mib": rss, "wall_s": wall,
            "compat_edits": edits}


def pair_summary(pairs: list[dict]) -> dict:
    """Medians over interleaved (securedd, reference) pairs: per-iteration seconds of each side,
    the per-pair speed-up (median and range), peak memory (max) and process wall time (median)."""
    ratios = [p["reference"]["per_iter_s"] / p["ours"]["per_iter_s"] for p in pairs]
    out: dict = {"pairs": len(pairs), "speedup_median": statistics.median(ratios),
                 "speedup_range": [min(ratios), max(ratios)]}
    for side in ("ours", "reference"):
        out[side] = {"per_iter_s": statistics.median(p[side]["per_iter_s"] for p in pairs),
                     "first_s": statistics.median(p[side]["first_s"] for p in pairs),
                     "wall_s": statistics.median(p[side]["wall_s"] for p in pairs),
                     "peak_rss_mib": max(p[side]["peak_rss_mib"] for p in pairs)}
    return out


def render(results: dict) -> str:
    rows = ["| method | IPC | pairs | securedd s/iter | reference s/iter | speed-up (range) | securedd peak MiB "
            "| reference peak MiB | securedd / reference process wall s | securedd first iter s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        if ":" not in key:
            continue
        method, ipc = key.split(":")[:2]
        s = pair_summary(r["pairs"]) if "pairs" in r else {  # a single run (results before --pairs)
            "pairs": 1, "ours": r["ours"], "reference": r["reference"],
            "speedup_median": r["reference"]["per_iter_s"] / r["ours"]["per_iter_s"]}
        o, ref = s["ours"], s["reference"]
        spread = f" ({s['speedup_range'][0]:.2f}-{s['speedup_range'][1]:.2f})" if "speedup_range" in s else ""
        rows.append(f"| {method} | {ipc} | {s['pairs']} | {o['per_iter_s']:.2f} | {ref['per_iter_s']:.2f} | "
                    f"{s['speedup_median']:.2f}x{spread} | {o['peak_rss_mib']} | {ref['peak_rss_mib']} | "
                    f"{o['wall_s']:.0f} / {ref['wall_s']:.0f} | {o['first_s']:.1f} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", help="checkout of the reference DC/DSA/DM code")
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"), help="folder holding MNIST/raw")
    p.add_argument("--settings", default="dm:1,dm:10,dc:1,dsa:1,dc:10,dsa:10", help="method:ipc,...")
    p.add_argument("--iterations", type=int, default=10, help="iterations timed after the first (IPC 10 DC/DSA: 1)")
    p.add_argument("--no-compile", action="store_true", help="run securedd eagerly")
    p.add_argument("--pairs", type=int, default=3, help="interleaved (securedd, reference) runs per setting")
    p.add_argument("--out", type=Path, default=RESULTS, help="results JSON (default: %(default)s)")
    p.add_argument("--render", action="store_true", help="print the table from the saved JSON")
    p.add_argument("--child", nargs=3, metavar=("METHOD", "IPC", "ITERATIONS"), help=argparse.SUPPRESS)
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), args.data_root, args.compile)
        return
    results = side_by_side_results(p, args, render)
    if results is None:
        return
    results.setdefault("machine", {"cpu": cpu_model(), "cores": os.cpu_count()})
    for setting in args.settings.split(","):
        method, ipc = setting.split(":")
        entry = results.setdefault(setting, {"pairs": [], "compile": not args.no_compile,
                                             "threads": os.environ.get("OMP_NUM_THREADS", "default")})
        n = 1 if method in ("dc", "dsa") and int(ipc) >= 10 else args.iterations
        while len(entry.get("pairs", [])) < args.pairs:  # interleaved: securedd, reference, securedd, ...
            load = os.getloadavg()[0]
            ours = run_ours(method, int(ipc), n + 1, args.data_root, not args.no_compile)
            print(setting, "securedd", json.dumps(ours), flush=True)
            ref = run_reference(args.reference, method, int(ipc), n, args.data_root)
            print(setting, "reference", json.dumps(ref), flush=True)
            entry["pairs"].append({"ours": ours, "reference": ref, "load_1min_before": round(load, 2)})
            save_results(args.out, results)
    print(render(results))


if __name__ == "__main__":
    main()
