"""The public DD and SLDD reference code on this machine, for the MNIST rows of ``benchmarks/dd.py``.

Runs the bilevel distillation of the DD paper's own code (SsnL/dataset-distillation) and of
its soft-label fork (ilia10000/dataset-distillation, the SLDD and SecDD authors' code) on
MNIST with a fixed LeNet initialisation, on the CPU, at the papers' settings, and records the
accuracy the code itself reports at the end (the learned steps replayed on the same network,
all 10,000 test images) beside the trajectory it logs every 10 passes (1,024 shuffled test
images). It answers one question: does the published figure come out of the published code
here, at the published budget? Our own rows are ``benchmarks/dd.py`` and
``benchmarks/secdd.py``.

Cases:

- ``dd-fixed`` (``--reference`` the DD checkout): 10 images in 1 step x 3 epochs, known init,
  its defaults otherwise (Adam 0.01 halved every 40 passes, initial step rate 0.02, 400
  passes over MNIST in batches of 1,024). Paper: 94%.
- ``sldd-fixed`` (``--reference`` the fork): the same with learned labels (one-hot start,
  used unrestricted) at the fork's MNIST script settings (initial step rate 0.01, halved
  every 35 of 350 passes). Fork: about 96%.
- ``secdd-noise`` (the fork): ``sldd-fixed`` with the images frozen as their random-noise
  start (``--freeze_data``), only labels and rates learned: SecDD's noise mode. SecDD: about 95%.

The code runs from a scratch copy with harness edits only, none of which changes what it
computes: ``optimizer.zero_grad(set_to_none=False)`` (the code adds into ``.grad``, which
current PyTorch leaves as ``None`` after ``zero_grad()``), no dataset download (MNIST comes
from ``--data-root`` in torchvision's layout), and optional ``torchtext`` imports (text
datasets only). ``--epochs`` shortens a run for a quick look; the papers' figures need the
full budget: 6,900 to 7,300 s per case on one core here, shared with other jobs. The reference's own
requirements (``six``, ``pyyaml``, ``tqdm``, ``matplotlib``) must be importable.

Usage:
    python benchmarks/dd_reference.py --reference PATH/TO/dataset-distillation --cases dd-fixed
    python benchmarks/dd_reference.py --reference PATH/TO/soft-label-fork --cases sldd-fixed,secdd-noise
    python benchmarks/dd_reference.py --reference PATH/TO/dataset-distillation --cases dd-fixed --epochs 102 \\
        --arg '--base_seed 2' --arg '--lr 0.05' --arg '--distill_lr 0.3' --arg '--decay_epochs 25'
    python benchmarks/dd_reference.py --render

Results go to ``benchmarks/results/dd_reference.json``, keyed by case, passes and ``--arg``
options; the run's log is kept next to it in ``benchmarks/work/dd_reference/``. Runs that
differ only in ``--base_seed`` (the reference's starting network; its default is 1) are
summarised as mean ± std below the table.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import load_results, save_results, seed_spread  # noqa: E402

RESULTS = HERE / "results" / "dd_reference.json"
FIXED = ["--mode", "distill_basic", "--dataset", "MNIST", "--arch", "LeNet", "--distill_steps", "1",
         "--train_nets_type", "known_init", "--n_nets", "1", "--test_nets_type", "same_as_train"]
SOFT = ["--static_labels", "0", "--random_init_labels", "", "--distill_lr", "0.01", "--decay_epochs", "35"]
CASES = {"dd-fixed": (FIXED, 400), "sldd-fixed": (FIXED + SOFT, 350),
         "secdd-noise": (FIXED + SOFT + ["--freeze_data", "True"], 350)}
PUBLISHED = {"dd-fixed": "94", "sldd-fixed": "~96", "secdd-noise": "~95"}
RESULT_LINE = re.compile(r"step\s+\d+ \(lr=([\d.]+)\)\s+([\d.]+) ±")
EPOCH_HEADER = re.compile(r"Begin of epoch (\d+)\s+\(")


def prepare(reference: Path, scratch: Path, data_root: Path) -> int:
    """Copy the reference into ``scratch`` with the harness edits; return how many were made."""
    shutil.copytree(reference, scratch, ignore=shutil.ignore_patterns(".git", "results", "*.png", "*.txt"))
    edits = 0
    for path in scratch.rglob("*.py"):
        text = path.read_text()
        new = text.replace("self.optimizer.zero_grad()", "self.optimizer.zero_grad(set_to_none=False)")
        new = new.replace("download=True", "download=False")
        new = re.sub(r"^((?:from torchtext|import torchtext).*)$", r"try:\n    \1\nexcept ImportError:\n    pass",
                     new, flags=re.M)
        new = new.replace("from skimage.measure import compare_ssim, compare_mse, compare_nrmse",
                          "compare_ssim = compare_mse = compare_nrmse = None")
        if new != text:
            edits += 1
            path.write_text(new)
    mnist = scratch / "data" / "mnist" / "MNIST"
    mnist.mkdir(parents=True)
    (mnist / "raw").symlink_to((data_root / "MNIST" / "raw").resolve())
    return edits


def parse_log(text: str) -> dict:
    """The final (test ALL) accuracy and learned last rate, and the every-10-passes trajectory."""
    final = text[text.rindex("(test ALL)"):] if "(test ALL)" in text else ""
    match = RESULT_LINE.search(final)
    trajectory = {}
    for header in EPOCH_HEADER.finditer(text):
        step = RESULT_LINE.search(text, header.end())
        if step:
            trajectory[int(header.group(1))] = float(step.group(2))
    return {"accuracy": float(match.group(2)) if match else None,
            "last_lr": float(match.group(1)) if match else None, "trajectory_1024": trajectory}


def final_rates(results: Path) -> list[float] | None:
    """Every learned step rate of the final set (the code saves ``[(images, labels, rate), ...]``)."""
    import torch

    saved = [p for p in results.rglob("results.pth") if "checkpoints" not in p.parts]
    if len(saved) != 1:
        return None
    steps = torch.load(saved[0], map_location="cpu", weights_only=False)
    return [round(float(step[-1]), 4) for step in steps]


def run_case(case: str, reference: Path, data_root: Path, epochs: int | None, work: Path,
             extra: list[str]) -> dict:
    args, default_epochs = CASES[case]
    epochs = epochs or default_epochs
    scratch = work / "-".join([case, str(epochs), *(re.sub(r"\W+", "", a) for a in extra)])
    if scratch.exists():
        shutil.rmtree(scratch)
    edits = prepare(reference, scratch, data_root)
    options = [word for option in extra for word in shlex.split(option)]  # quotes keep a value with spaces or an empty one
    replaced = {word for word in options if word.startswith("--")}  # the code refuses an option given twice
    own = [word for flag, value in zip(args[::2], args[1::2], strict=True) if flag not in replaced for word in (flag, value)]
    cmd = [sys.executable, "main.py", *own, *options, "--epochs", str(epochs), "--device_id", "-1", "--num_workers", "0",
           "--results_dir", str(scratch / "results")]
    log = scratch.with_suffix(".log")
    start = time.perf_counter()
    with log.open("w") as out:
        rc = subprocess.call(cmd, cwd=scratch, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
    seconds = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"the reference failed (exit {rc}); see {log}")
    parsed = parse_log(log.read_text())
    parsed["learned_lrs"] = final_rates(scratch / "results")
    shutil.rmtree(scratch)
    shown = " ".join(cmd[1:-1] + ["SCRATCH/results"])  # the scratch copy's place is this machine's business
    return {"case": case, "passes": epochs, "extra": extra, "command": shown, "harness_edits": edits,
            "seconds": round(seconds, 1), "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
            "published": PUBLISHED[case], **parsed}


def render(results: dict) -> str:
    rows = ["| case | passes | options | reference code, test accuracy (%) | published (%) | wall s |",
            "|---|---|---|---|---|---|"]
    for r in results.values():
        accuracy = "no final line in its log" if r["accuracy"] is None else f"{r['accuracy']:.2f}"
        options = " ".join(r.get("extra", [])) or "-"
        rows.append(f"| {r['case']} | {r['passes']} | {options} | {accuracy} | {r['published']} | {r['seconds']:.0f} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, help="checkout of the reference code for the chosen cases")
    p.add_argument("--data-root", type=Path, default=os.environ.get("SECUREDD_DATA"))
    p.add_argument("--cases", default="dd-fixed", help=f"comma-separated, of {', '.join(CASES)}")
    p.add_argument("--epochs", type=int, help="passes over MNIST (default: the paper's, per case)")
    p.add_argument("--arg", action="append", default=[], metavar="'--OPTION VALUE'",
                   help="an option for the reference code, replacing the case's own of that name (repeatable), "
                        "e.g. --arg '--base_seed 2' for another starting network; quote inside it as in a shell "
                        "(--arg \"--OPTION ''\" passes an empty value)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--work", type=Path, default=HERE / "work" / "dd_reference")
    p.add_argument("--render", action="store_true", help="print the table from the saved results")
    args = p.parse_args()
    results = load_results(args.out)
    if not args.render:
        if args.reference is None or args.data_root is None:
            p.error("--reference and --data-root (or SECUREDD_DATA) are required")
        args.work.mkdir(parents=True, exist_ok=True)
        for case in args.cases.split(","):
            if case not in CASES:
                p.error(f"unknown case '{case}'; valid: {', '.join(CASES)}")
            key = "|".join([case, str(args.epochs or CASES[case][1]), *args.arg])
            if key in results:
                continue
            results[key] = run_case(case, args.reference.resolve(), args.data_root, args.epochs, args.work.resolve(),
                                     args.arg)
            print(key, results[key]["accuracy"], flush=True)
            save_results(args.out, results)
    print(render(results))
    print(seed_spread(results, lambda r: r["accuracy"], "--base_seed", ("passes", "options", "test accuracy (%)")))


if __name__ == "__main__":
    main()
