"""Federated distribution matching (FedDM's setting), beside central DM and random images.

Every set has 10 images per class. On digits (the default) it is evaluated as the demo
evaluates: 3 fresh ConvNet-3 models, 300 epochs, no augmentation, final test accuracy
(mean ± std). With ``--protocol`` (MNIST, CIFAR-10) it is the standard protocol instead: 3
fresh ConvNet-3 models, DSA, 1000 epochs. Cases:

- ``random``: 10 random real images per class (the floor);
- ``dm:iterations=N``: DM centrally on all of digits' training split, N iterations, from
  noise (as the federation starts) or from real images (``init=real``, DM's default);
- ``sfdd-dm:rounds=N[,clients=Z,defence=D,momentum=M]``: Z clients (default 3) with IID
  shards, N rounds of one DM iteration each on their shard, the server's mean (FedAvgM
  momentum M), the federation's own loop in this process (``run_in_process``); ``defence``
  one of the client-stage defences, with its defaults or ``eps`` (LDPO-RLD), ``clip`` and
  ``noise_multiplier`` (Gaussian LocalDP).

Matching network: ConvNet-2 (``convnet_tiny``) on digits, as the demo's federation;
``--model`` picks another (ConvNet-3, ``convnet``, for MNIST). One thread.

Usage:
    python benchmarks/feddm.py
    python benchmarks/feddm.py --cases random sfdd-dm:rounds=200,defence=ldpo-rld
    python benchmarks/feddm.py --dataset mnist --model convnet --protocol \
        --cases dm:iterations=200 sfdd-dm:rounds=200,clients=5,momentum=0.5

Sets and checkpoints are kept in ``--work`` (``benchmarks/work/feddm``): an interrupted
case resumes its distillation or federation, and a distilled set is not distilled again.
Results go to ``benchmarks/results/feddm.json``, keyed by case (prefixed by the dataset,
model and protocol when they are not digits' defaults); a finished case is not repeated.
"""

from __future__ import annotations

import argparse
import os
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


def base(dataset: str, model: str) -> list[str]:
    """The overrides every case shares."""
    return [f"data.name={dataset}", "method.ipc=10", f"model={model}", "seed=0"]


def _options(case: str) -> tuple[str, dict[str, str]]:
    name, _, rest = case.partition(":")
    return name, dict(part.split("=", 1) for part in rest.split(",") if part)


def run_case(case: str, train, test, args: argparse.Namespace) -> dict:  # type: ignore[no-untyped-def]
    from securedd.api import distill, evaluate
    from securedd.artifacts import load_artifact
    from securedd.config import EvalConfig, RunConfig, apply_overrides
    from securedd.defences import make_defence
    from securedd.federated.apps import run_in_process
    from securedd.federated.settings import FederationSettings

    name, opts = _options(case)
    shared = base(args.dataset, args.model)
    start = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / (f"{args.dataset}_{args.model}_" + "".join(c if c.isalnum() else "_" for c in case) +
                       ".safetensors")
    timing = out.with_suffix(".seconds")
    if out.is_file() and timing.is_file():  # distilled before; its evaluation was interrupted
        art, seconds = load_artifact(out), float(timing.read_text())
    else:
        if name == "random":
            art = distill(apply_overrides(RunConfig(), [*shared, "method.name=random"]), out=out, real=train,
                          progress=False)
        elif name == "dm":
            cfg = apply_overrides(RunConfig(), [*shared, "method.name=dm", f"method.iterations={opts['iterations']}",
                                                f"method.init={opts.get('init', 'noise')}"])
            art = distill(cfg, out=out, real=train, progress=False, resume=Path(str(out) + ".ckpt").is_file())
        elif name == "sfdd-dm":
            cfg = apply_overrides(RunConfig(), [*shared, "method.name=dm"])
            extra = {k: float(opts[k]) for k in ("eps", "clip", "noise_multiplier") if k in opts}
            defence = make_defence(opts["defence"], **extra) if "defence" in opts else None
            art = run_in_process(FederationSettings(cfg, clients=int(opts.get("clients", 3)), rounds=int(opts["rounds"]),
                                                    defence=defence, server_momentum=float(opts.get("momentum", 0)),
                                                    out=str(out), progress=False))
        else:
            raise SystemExit(f"unknown case '{case}'")
        seconds = time.perf_counter() - start
        timing.write_text(f"{seconds:.1f}")
    protocol = EvalConfig(models=("convnet",), runs=3) if args.protocol else \
        EvalConfig(models=("convnet",), runs=3, epochs=300, dsa=False)
    eval_start = time.perf_counter()
    arch = evaluate(art, config=protocol, test=test, progress=False).archs[0]
    eval_seconds = time.perf_counter() - eval_start
    return {"accuracy_mean": round(arch.mean, 2), "accuracy_std": round(arch.std, 2),
            "accuracies": [round(a, 2) for a in arch.accuracies], "distill_seconds": round(seconds, 1),
            "eval_seconds": round(eval_seconds, 1), "privacy": art.metadata.get("privacy"),
            "dropped_replies": sum(len(h.get("dropped", ())) for h in
                                   art.metadata.get("info", {}).get("federated", {}).get("history", []))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=CASES)
    ap.add_argument("--dataset", default="digits", help="digits (bundled), mnist or cifar10 ($SECUREDD_DATA)")
    ap.add_argument("--model", default="convnet_tiny", help="the matching network")
    ap.add_argument("--work", type=Path, default=HERE / "work" / "feddm",
                    help="where sets and checkpoints are kept: an interrupted case resumes from them")
    ap.add_argument("--protocol", action="store_true",
                    help="evaluate with the standard protocol (DSA, 1000 epochs) instead of the demo's")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from securedd.data import load_dataset

    root = os.environ.get("SECUREDD_DATA")
    train, test = load_dataset(args.dataset, "train", root=root), load_dataset(args.dataset, "test", root=root)
    prefix = "" if (args.dataset, args.model, args.protocol) == ("digits", "convnet_tiny", False) else \
        f"{args.dataset}|{args.model}|{'protocol' if args.protocol else 'demo'}|"
    results = load_results(RESULTS)
    for case in args.cases:
        if prefix + case not in results:
            results[prefix + case] = {**run_case(case, train, test, args), "load_1min_before": os.getloadavg()[0]}
            save_results(RESULTS, results)
        r = results[prefix + case]
        print(f"{case:<60} {r['accuracy_mean']:6.2f} ± {r['accuracy_std']:.2f}   ({r['distill_seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
