"""The evaluation protocol's speed and accuracy: securedd beside the reference evaluation routine.

One model of the protocol -- a fresh ConvNet-3 trained on a fixed CIFAR-10 IPC 10 set (10
random real training images per class, drawn with a fixed seed) with DSA for 1000 epochs
(SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr / 10 at half-way), then scored
on the 10,000 test images -- timed as a fresh process per model, in interleaved pairs:
securedd, reference, securedd, reference, ... Both sides get the identical images,
normalised identically, and use every core (torch's default threads).

- securedd: :func:`securedd.evaluate_set` with one run (seed = the pair's index), its
  default settings (compilation chosen automatically: on for this much work), in fp32 or,
  with ``--precision bf16``, bfloat16 mixed precision.
- reference: ``evaluate_synset`` of the public DC/DSA/DM code (VICO-UoE/DatasetCondensation)
  with ``--dsa`` on, its default strategy ``color_crop_cutout_flip_scale_rotate``, 1000
  epochs and the test images in a ``TensorDataset`` loader of batch 256 (its own
  loader for CIFAR-10 decodes PIL images per sample, which would only slow it). It runs
  from a scratch copy with ``benchmarks/speed.py``'s two value-preserving compatibility
  edits. The routine trains ``epochs + 1`` epochs (its loop runs 0..epochs) and drops the
  lr after ``epochs // 2 + 1``; that extra epoch is part of its time, as it is of its users'.

Per model: ``model_s``, the seconds of training plus scoring (compilation included for
securedd's; it happens in each fresh process); ``wall_s``, the whole process (interpreter
start, imports, data loading); ``peak_rss_mib``, the process's own peak (``VmHWM``); and the
test accuracy.
The speed-up is the median over pairs of reference / securedd ``model_s``, with its
range; accuracy is mean ± std over each side's models. The load average is recorded
before every process.

Usage:
    python benchmarks/eval_speed.py --reference PATH/TO/DatasetCondensation --pairs 5
    python benchmarks/eval_speed.py --reference ... --epochs 100 --pairs 3 --out /tmp/quick.json
    python benchmarks/eval_speed.py --reference ... --pairs 3 --precision bf16   # securedd in bf16
    python benchmarks/eval_speed.py --render

Results: ``benchmarks/results/eval_speed.json`` (resumable: finished pairs are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import cpu_model, save_results, side_by_side_results  # noqa: E402
from speed import _run, prepare_reference  # noqa: E402

RESULTS = HERE / "results" / "eval_speed.json"
RESULTS_BF16 = HERE / "results" / "eval_speed_bf16.json"
STRATEGY = "color_crop_cutout_flip_scale_rotate"  # the CIFAR-10 DSA strategy (REFERENCE section 2)
IPC = 10


def write_fixed_set(data_root: str, path: Path) -> None:
    """Save the benchmark's IPC 10 set (random real images, seed 0) and the test split,
    normalised, so that each timed process loads only these (its peak memory is the routine's)."""
    import torch

    from securedd.data import load_dataset

    train = load_dataset("cifar10", "train", root=data_root)
    test = load_dataset("cifar10", "test", root=data_root)
    gen = torch.Generator().manual_seed(0)
    index = torch.cat([torch.nonzero(train.labels == c).flatten()[
        torch.randperm(int((train.labels == c).sum()), generator=gen)[:IPC]] for c in range(10)])
    torch.save({"images": train.images[index].clone(), "labels": train.labels[index].clone(),
                "test_images": test.images, "test_labels": test.labels}, path)


def fixed_set(path: str):  # type: ignore[no-untyped-def]
    """(images, labels, test) from :func:`write_fixed_set`'s file."""
    import torch

    from securedd.data import dataset_spec
    from securedd.data.spec import RealData

    saved = torch.load(path)
    return saved["images"], saved["labels"], RealData(saved["test_images"], saved["test_labels"],
                                                      dataset_spec("cifar10"))


def child_ours(run: int, epochs: int, set_path: str, precision: str = "fp32") -> dict:
    from securedd.evaluation import evaluate_set
    from securedd.training import TrainSettings

    images, labels, test = fixed_set(set_path)
    start = time.perf_counter()
    report = evaluate_set(images, labels, test, runs=1, seed=run, progress=False,
                          settings=TrainSettings(epochs=epochs, dsa_strategy=STRATEGY, precision=precision))
    seconds = time.perf_counter() - start
    return {"model_s": seconds, "accuracy": report.archs[0].accuracies[0], "compile": report.protocol["compile"],
            "precision": precision}


def child_reference(run: int, epochs: int, set_path: str, reference: str) -> dict:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    images, labels, test = fixed_set(set_path)
    with tempfile.TemporaryDirectory() as code:
        prepare_reference(reference, code)
        sys.path.insert(0, code)
        import utils  # the reference's module, from the scratch copy

        args = argparse.Namespace(device="cpu", lr_net=0.01, epoch_eval_train=epochs, batch_train=256, dsa=True,
                                  dsa_strategy=STRATEGY, dsa_param=utils.ParamDiffAug())
        torch.manual_seed(run)
        net = utils.get_network("ConvNet", 3, 10, (32, 32))
        loader = DataLoader(TensorDataset(test.images, test.labels), batch_size=256, shuffle=False, num_workers=0)
        start = time.perf_counter()
        _, _, accuracy = utils.evaluate_synset(run, net, images, labels, loader, args)
        seconds = time.perf_counter() - start
    return {"model_s": seconds, "accuracy": 100 * float(accuracy)}


def peak_rss_mib() -> int:
    """This process's peak resident memory (``VmHWM``: of its own address space, so not inflated by
    a parent's memory at fork, as ``ru_maxrss`` is)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return -1


def run_side(side: str, run: int, epochs: int, set_path: Path, reference: str | None,
             precision: str = "fp32") -> dict:
    load = os.getloadavg()[0]
    cmd = [sys.executable, str(Path(__file__)), "--child", side, str(run), "--epochs", str(epochs),
           "--set", str(set_path), "--precision", precision] + (["--reference", reference] if reference else [])
    lines, wall, _ = _run(cmd)
    result = json.loads(next(text for _, text in reversed(lines) if text.startswith("{")))
    return {**result, "wall_s": round(wall, 2), "load_1min_before": round(load, 2)}


def summary(results: dict) -> dict:
    pairs = [p for key, p in results.items() if key.startswith("pair")]
    if not pairs:
        return {}
    ratios = [p["reference"]["model_s"] / p["securedd"]["model_s"] for p in pairs]
    out: dict = {"pairs": len(pairs), "speedup_median": round(statistics.median(ratios), 3),
                 "speedup_range": [round(min(ratios), 3), round(max(ratios), 3)]}
    for side in ("securedd", "reference"):
        acc = [p[side]["accuracy"] for p in pairs]
        out[side] = {"model_s_median": round(statistics.median(p[side]["model_s"] for p in pairs), 1),
                     "wall_s_median": round(statistics.median(p[side]["wall_s"] for p in pairs), 1),
                     "peak_rss_mib_max": max(p[side]["peak_rss_mib"] for p in pairs),
                     "accuracy_mean": round(statistics.fmean(acc), 2),
                     "accuracy_std": round(statistics.pstdev(acc), 2) if len(acc) > 1 else 0.0,
                     "accuracies": [round(a, 2) for a in acc]}
    return out


def render(results: dict) -> str:
    s = summary(results)
    if not s:
        return "(no pairs yet)"
    machine = results.get("machine", {})
    rows = [f"CIFAR-10 IPC 10, ConvNet-3, DSA, {results.get('epochs')} epochs, securedd in "
            f"{results.get('precision', 'fp32')}; {s['pairs']} interleaved pairs; "
            f"{machine.get('cpu')} ({machine.get('cores')} cores)",
            "", "| side | s / model (median) | process wall s (median) | peak MiB | accuracy (%) |",
            "|---|---|---|---|---|"]
    for side in ("securedd", "reference"):
        d = s[side]
        rows.append(f"| {side} | {d['model_s_median']} | {d['wall_s_median']} | {d['peak_rss_mib_max']} | "
                    f"{d['accuracy_mean']:.2f} ± {d['accuracy_std']:.2f} |")
    lo, hi = s["speedup_range"]
    rows += ["", f"speed-up (reference / securedd, per pair): median {s['speedup_median']:.2f}x, "
                 f"range {lo:.2f}x-{hi:.2f}x"]
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", help="checkout of the reference DC/DSA/DM code")
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"), help="folder holding cifar10/")
    p.add_argument("--pairs", type=int, default=5, help="interleaved (securedd, reference) pairs")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="securedd's precision (the reference always runs fp32)")
    p.add_argument("--out", type=Path, help=f"results JSON (default: {RESULTS.name}, or with --precision bf16 "
                                            f"{RESULTS_BF16.name}, in {RESULTS.parent})")
    p.add_argument("--render", action="store_true", help="print the table from the saved JSON")
    p.add_argument("--child", nargs=2, metavar=("SIDE", "RUN"), help=argparse.SUPPRESS)
    p.add_argument("--set", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.out = args.out or (RESULTS if args.precision == "fp32" else RESULTS_BF16)
    if args.child:
        side, run = args.child[0], int(args.child[1])
        result = (child_ours(run, args.epochs, args.set, args.precision) if side == "securedd"
                  else child_reference(run, args.epochs, args.set, args.reference))
        print(json.dumps({**result, "peak_rss_mib": peak_rss_mib()}))
        return
    results = side_by_side_results(p, args, render)
    if results is None:
        return
    if results.get("epochs", args.epochs) != args.epochs:
        p.error(f"{args.out} holds {results['epochs']}-epoch pairs; pass --out for another budget")
    if any(key.startswith("pair") for key in results) and results.get("precision", "fp32") != args.precision:
        p.error(f"{args.out} holds securedd {results.get('precision', 'fp32')} pairs; pass --out for {args.precision}")
    import torch

    results.update(epochs=args.epochs, precision=args.precision, machine={"cpu": cpu_model(), "cores": os.cpu_count(),
                                                "torch": torch.__version__, "threads": torch.get_num_threads()})
    with tempfile.TemporaryDirectory() as scratch:
        set_path = Path(scratch) / "set.pt"
        write_fixed_set(args.data_root, set_path)
        for run in range(args.pairs):
            key = f"pair{run}"
            if key in results:
                continue
            pair = {side: run_side(side, run, args.epochs, set_path, args.reference, args.precision)
                    for side in ("securedd", "reference")}
            print(key, json.dumps(pair), flush=True)
            results[key] = pair
            save_results(args.out, results)
    results["summary"] = summary(results)
    save_results(args.out, results)
    print(render(results))


if __name__ == "__main__":
    main()
