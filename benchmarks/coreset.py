"""Coreset baselines on MNIST: random, herding and k-center at IPC 1 and 10 (50 with --ipc50).

The standard ConvNet protocol: each set is evaluated by 3 fresh ConvNet-3 models trained
for 300 epochs without augmentation (REFERENCE section 2); final test accuracy, mean ± std.
Sets at the IPCs named by --dsa-ipcs (default 1) are also evaluated with DSA for 1000
epochs, the augmented protocol the published small-set figures were measured with.
Results are appended cell by cell to a JSON file, so an interrupted run resumes where it
stopped, and a Markdown table with the published figures is printed and written.

Usage:
    SECUREDD_DATA=/path/to/datasets python benchmarks/coreset.py [--ipc50] [--runs 3] [--epochs 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from securedd import RunConfig, apply_overrides, distill
from securedd.data import load_splits
from securedd.evaluation import TrainSettings, evaluate_set
from securedd.store import atomic_write_bytes

# Random: REFERENCE section 6. Herding and k-center: the DC paper (Zhao et al., ICLR 2021), Table 1.
PUBLISHED = {("random", 1): 64.9, ("random", 10): 95.1, ("random", 50): 97.9,
             ("herding", 1): 89.2, ("herding", 10): 93.7, ("herding", 50): 94.8,
             ("kcenter", 1): 89.3, ("kcenter", 10): 84.4, ("kcenter", 50): 97.4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc50", action="store_true", help="also run IPC 50 (slow on 2 cores)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--methods", default="random,herding,kcenter")
    parser.add_argument("--out", default="benchmarks/results/coreset.json")
    parser.add_argument("--dsa-ipcs", default="1", help="IPCs also evaluated with DSA, 1000 epochs ('' for none)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    train, test = load_splits(args.dataset)
    ipcs = [1, 10] + ([50] if args.ipc50 else [])
    dsa_ipcs = {int(v) for v in args.dsa_ipcs.split(",") if v.strip()}
    for ipc in ipcs:
        for method in args.methods.split(","):
            protocols = [("plain", args.epochs, None)]
            if ipc in dsa_ipcs:
                protocols.append(("dsa", 1000, train.spec.dsa_strategy))
            art = None
            for protocol, epochs, strategy in protocols:
                key = f"{args.dataset}/{method}/ipc{ipc}/runs{args.runs}/epochs{epochs}" + ("/dsa" if strategy else "")
                if key in results:
                    continue
                if art is None:
                    cfg = apply_overrides(RunConfig(), [f"data.name={args.dataset}", f"method.name={method}",
                                                        f"method.ipc={ipc}"])
                    start = time.perf_counter()
                    art = distill(cfg, real=train, progress=False)
                    select_s = time.perf_counter() - start
                report = evaluate_set(art.images, art.labels, test, runs=args.runs, progress=False,
                                      settings=TrainSettings(epochs=epochs, dsa_strategy=strategy))
                arch = report.archs[0]
                results[key] = {"dataset": args.dataset, "method": method, "ipc": ipc, "protocol": protocol,
                                "epochs": epochs, "mean": arch.mean, "std": arch.std, "accuracies": arch.accuracies,
                                "select_seconds": round(select_s, 1), "seconds_per_model": round(arch.seconds_per_model, 1),
                                "threads": torch.get_num_threads(), "published": PUBLISHED.get((method, ipc)),
                                "sha256": art.sha256}
                atomic_write_bytes(out, json.dumps(results, indent=2).encode())
                print(f"{key}: {arch.mean:.2f} ± {arch.std:.2f} ({arch.seconds_per_model:.0f} s/model)", flush=True)
    render(results, args.dataset, out)


def render(results: dict, dataset: str, out: Path) -> None:
    """Print the Markdown table of ``results`` and write it beside the JSON file."""
    table = to_markdown([r for r in results.values() if r["dataset"] == dataset])
    print(table)
    atomic_write_bytes(out.with_suffix(".md"), (table + "\n").encode())


def to_markdown(rows: list[dict]) -> str:
    lines = ["| method | IPC | evaluation | ours (%) | published (%) | selection (s) | s / evaluated model |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["ipc"], r["method"], r.get("protocol", "plain"))):
        published = PUBLISHED.get((r["method"], r["ipc"]))
        pub = f"{published:.1f}" if published is not None else "–"
        protocol = "DSA, 1000 ep." if r.get("protocol") == "dsa" else f"no aug., {r.get('epochs', 300)} ep."
        lines.append(f"| {r['method']} | {r['ipc']} | {protocol} | {r['mean']:.2f} ± {r['std']:.2f} | {pub} | "
                     f"{r['select_seconds']:.0f} | {r['seconds_per_model']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
