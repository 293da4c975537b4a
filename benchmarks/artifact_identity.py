"""Do refactors change what a method produces? SHA-256 of the synthetic tensors per setting.

Distils the MNIST settings of ``benchmarks/accuracy.py`` with securedd (ConvNet-3,
``method.compile=true``, seed 0, the DSA strategy that benchmark uses) and records the
SHA-256 of the synthetic images and labels, keyed by a label of your choice (a commit).
Two labels with the same hashes for a setting mean the refactor left the method's output
bit-identical on this machine; where they differ, evaluate both with ``accuracy.py``.

Usage:
    python benchmarks/artifact_identity.py --label before --data-root $SECUREDD_DATA
    python benchmarks/artifact_identity.py --label after --data-root $SECUREDD_DATA
    python benchmarks/artifact_identity.py --render

Results: benchmarks/results/artifact_identity.json (resumable per label and setting).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import load_results, save_results  # noqa: E402
from speed import MNIST_DSA  # noqa: E402

RESULTS = HERE / "results" / "artifact_identity.json"
SETTINGS = ("dc:1:100", "dm:10:300")


def distil(method: str, ipc: int, budget: int, data_root: str) -> dict:
    import torch

    from securedd import RunConfig, apply_overrides
    from securedd.data import load_dataset
    from securedd.distill import run_method

    torch.set_num_threads(1)
    real = load_dataset("mnist", "train", root=data_root)
    overrides = ['data.name="mnist"', f'method.name="{method}"', f"method.ipc={ipc}",
                 f"method.iterations={budget}", "method.compile=true", "seed=0"]
    if method in ("dsa", "dm"):
        overrides.append(f'method.dsa_strategy="{MNIST_DSA}"')
    start = time.perf_counter()
    syn = run_method(apply_overrides(RunConfig(), overrides), real, progress=False).synthetic
    seconds = time.perf_counter() - start
    digest = hashlib.sha256()
    for t in (syn.images.detach(), syn.labels.detach()):
        digest.update(t.contiguous().cpu().numpy().tobytes())
    return {"sha256": digest.hexdigest(), "seconds": round(seconds, 1)}


def render(results: dict) -> str:
    labels = list(results)
    rows = ["| setting | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for setting in SETTINGS:
        rows.append(f"| {setting} | " + " | ".join(results[lab].get(setting, {}).get("sha256", "-")[:16]
                                                   for lab in labels) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", help="key of this run (e.g. a commit)")
    ap.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    ap.add_argument("--render", action="store_true")
    args = ap.parse_args()
    results = load_results(RESULTS)
    if not args.render:
        if not args.label or not args.data_root:
            raise SystemExit("--label and --data-root (or $SECUREDD_DATA) are needed")
        for setting in args.settings:
            if setting in results.get(args.label, {}):
                continue
            method, ipc, budget = setting.split(":")
            entry = distil(method, int(ipc), int(budget), args.data_root)
            results.setdefault(args.label, {})[setting] = entry
            save_results(RESULTS, results)
            print(setting, entry, flush=True)
    print(render(results))


if __name__ == "__main__":
    main()
