"""Federated distribution matching (FedDM's setting) on digits, beside central DM and random images.

Every set has 10 images per class and is evaluated as the demo evaluates: 3 fresh
ConvNet-3 models, 300 epochs, no augmentation, final test accuracy (mean ± std). Cases:

- ``random``: 10 random real images per class (the floor);
- ``dm:iterations=N``: DM centrally on all of digits' training split, N iterations, from
  noise (as the federation starts) or from real images (``init=real``, DM's default);
- ``sfdd-dm:rounds=N[,defence=D,momentum=M]``: 3 clients with IID shards, N rounds of one
  DM iteration each on their shard, the server's mean (FedAvgM momentum M), the
  federation's own loop in this process (``run_in_process``); ``defence`` one of the
  client-stage defences, with its defaults or ``eps`` (LDPO-RLD), ``clip`` and
  ``noise_multiplier`` (Gaussian LocalDP).

Matching network: ConvNet-2 (``convnet_tiny``), as the demo's federation. One thread.

Usage:
    python benchmarks/feddm.py
    python benchmarks/feddm.py --cases random sfdd-dm:rounds=200,defence=ldpo-rld

Results go to ``benchmarks/results/feddm.json``, keyed by case; a finished case is not repeated.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from results_io import load_results, save_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "feddm.json"
CASES = ["random", "dm:iterations=200", "dm:iterations=200,init=real", "sfdd-dm:rounds=200",
         "sfdd-dm:rounds=200,momentum=0.5", "sfdd-dm:rounds=200,momentum=0.5,defence=ldpo-rld",
         "sfdd-dm:rounds=200,momentum=0.5,defence=ldpo-rld,eps=0.3",
         "sfdd-dm:rounds=200,momentum=0.5,defence=localdp-gaussian",
         "sfdd-dm:rounds=200,momentum=0.5,defence=localdp-gaussian,noise_multiplier=0.01"]
BASE = ["data.name=digits", "method.ipc=10", "model=convnet_tiny", "seed=0"]


def _options(case: str) -> tuple[str, dict[str, str]]:
    name, _, rest = case.partition(":")
    return name, dict(part.split("=", 1) for part in rest.split(",") if part)


def run_case(case: str, train, test) -> dict:  # type: ignore[no-untyped-def]
    from securedd.api import distill, evaluate
    from securedd.config import EvalConfig, RunConfig, apply_overrides
    from securedd.defences import make_defence
    from securedd.federated.apps import FederationSettings, run_in_process

    name, opts = _options(case)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.safetensors"
        if name == "random":
            art = distill(apply_overrides(RunConfig(), [*BASE, "method.name=random"]), out=out, real=train,
                          progress=False)
        elif name == "dm":
            cfg = apply_overrides(RunConfig(), [*BASE, "method.name=dm", f"method.iterations={opts['iterations']}",
                                                f"method.init={opts.get('init', 'noise')}"])
            art = distill(cfg, out=out, real=train, progress=False)
        elif name == "sfdd-dm":
            cfg = apply_overrides(RunConfig(), [*BASE, "method.name=dm"])
            extra = {k: float(opts[k]) for k in ("eps", "clip", "noise_multiplier") if k in opts}
            defence = make_defence(opts["defence"], **extra) if "defence" in opts else None
            art = run_in_process(FederationSettings(cfg, clients=3, rounds=int(opts["rounds"]), defence=defence,
                                                    server_momentum=float(opts.get("momentum", 0)), out=str(out),
                                                    progress=False))
        else:
            raise SystemExit(f"unknown case '{case}'")
        seconds = time.perf_counter() - start
        arch = evaluate(art, config=EvalConfig(models=("convnet",), runs=3, epochs=300, dsa=False), test=test,
                        progress=False).archs[0]
    return {"accuracy_mean": round(arch.mean, 2), "accuracy_std": round(arch.std, 2),
            "accuracies": [round(a, 2) for a in arch.accuracies], "distill_seconds": round(seconds, 1),
            "privacy": art.metadata.get("privacy")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=CASES)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from securedd.data import load_dataset

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    results = load_results(RESULTS)
    for case in args.cases:
        if case not in results:
            results[case] = run_case(case, train, test)
            save_results(RESULTS, results)
        r = results[case]
        print(f"{case:<60} {r['accuracy_mean']:6.2f} ± {r['accuracy_std']:.2f}   ({r['distill_seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
