"""The demo's federated and SecDD settings on digits, measured beside the alternatives.

Every set is evaluated as the demo evaluates (``securedd.demo``): 3 fresh ConvNet-3 models,
300 epochs, no augmentation, final test accuracy. Cases:

- ``random``: 10 random real images (the floor of every IPC 1 set);
- ``dc:model=M,iterations=N``: DC from noise, centrally, with matching network M
  (``convnet`` is ConvNet-3, which pools 8x8 digits to 2x2 before its last norm;
  ``convnet_tiny`` is a ConvNet-2 of width 16, the demo's);
- ``sfdd:momentum=m``: the demo's federation (3 clients, one DC step each per round, its
  rounds) run in this process (``run_in_process``), with server momentum m; the demo runs
  the same apps on Flower's simulation engine;
- ``secdd:key=K[,preset=old]``: the demo's SecDD set for a key of seed K (``old``: the
  settings the demo had before, 150 iterations of 3 epochs at initial rate 0.3); the key's
  network, 5 other seeds and 3 other architectures replay it.

Usage:
    python benchmarks/demo_settings.py                       # every case below
    python benchmarks/demo_settings.py --cases random dc:model=convnet_tiny,iterations=50

Results go to ``benchmarks/results/demo_settings.json``, keyed by case; a finished case is
not repeated. One thread (``torch.set_num_threads(1)``), about 4 minutes in all.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from results_io import load_results, save_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "demo_settings.json"
CASES = ["random", "dc:model=convnet,iterations=50", "dc:model=convnet_tiny,iterations=50", "sfdd:momentum=0",
         "sfdd:momentum=0.5", *[f"secdd:key={k}" for k in (11, 22, 33, 44, 55)],
         *[f"secdd:key={k},preset=old" for k in (11, 22, 33, 44, 55)]]
OLD_SECDD = ["method.iterations=150", "method.epochs=3", "method.lr_init=0.3"]


def _options(case: str) -> tuple[str, dict[str, str]]:
    name, _, rest = case.partition(":")
    return name, dict(part.split("=", 1) for part in rest.split(",") if part)


def _score(art, test, eval_cfg) -> dict:
    from securedd.api import evaluate

    arch = evaluate(art, config=eval_cfg, test=test, progress=False).archs[0]
    return {"accuracy_mean": round(arch.mean, 2), "accuracy_std": round(arch.std, 2),
            "accuracies": [round(a, 2) for a in arch.accuracies], "sha256": art.sha256}


def run_case(case: str, train, test, eval_cfg) -> dict:
    from securedd.api import distill
    from securedd.attacks.key_search import replay_key
    from securedd.config import DataConfig, RunConfig, apply_overrides
    from securedd.demo import FEDERATED_DEMO, SECDD_DEMO, federated_settings
    from securedd.federated.apps import run_in_process
    from securedd.secure import TargetKey, save_key

    name, options = _options(case)
    base = RunConfig(data=DataConfig("digits"))
    start = time.perf_counter()
    if name == "random":
        art = distill(apply_overrides(base, ["method.name=random", "method.ipc=1"]), real=train, progress=False)
    elif name == "dc":
        cfg = apply_overrides(base, [*FEDERATED_DEMO, f"model={options['model']}",
                                     f"method.iterations={options['iterations']}"])
        art = distill(cfg, real=train, progress=False)
    elif name == "sfdd":
        with tempfile.TemporaryDirectory() as tmp:
            settings = federated_settings(DataConfig("digits"), 0, Path(tmp) / "fed.safetensors")
            art = run_in_process(replace(settings, server_momentum=float(options["momentum"])))
    elif name == "secdd":
        with tempfile.TemporaryDirectory() as tmp:
            key = TargetKey("convnet_tiny", int(options["key"]))
            save_key(key, Path(tmp) / "k.key")
            extra = OLD_SECDD if options.get("preset") == "old" else []
            art = distill(apply_overrides(base, [*SECDD_DEMO, *extra, f"method.key='{tmp}/k.key'"]), real=train,
                          progress=False)
        seconds = time.perf_counter() - start
        others = [replay_key(art, TargetKey(key.model, key.seed + k), test).accuracy for k in range(1, 6)]
        archs = {m: round(replay_key(art, TargetKey(m, key.seed), test).accuracy, 2) for m in ("convnet", "lenet", "mlp")}
        receiver = replay_key(art, key, test).accuracy
        return {"receiver": round(receiver, 2), "other_seeds": [round(a, 2) for a in others],
                "other_seeds_mean": round(statistics.mean(others), 2), "other_archs": archs,
                "margin": round(receiver - statistics.mean(others), 2), "distill_seconds": round(seconds, 1)}
    else:
        raise SystemExit(f"unknown case '{case}'")
    seconds = time.perf_counter() - start
    return {**_score(art, test, eval_cfg), "distill_seconds": round(seconds, 1)}


def render(results: dict) -> str:
    sets = ["| case | accuracy (%) | distillation (s) |", "|---|---|---|"]
    sets += [f"| {k} | {v['accuracy_mean']:.2f} ± {v['accuracy_std']:.2f} | {v['distill_seconds']} |"
             for k, v in results.items() if "accuracy_mean" in v]
    keys = ["| case | key's network | 5 other seeds: mean (max) | convnet / lenet / mlp | margin |", "|---|---|---|---|---|"]
    keys += [f"| {k} | {v['receiver']:.2f} | {v['other_seeds_mean']:.2f} ({max(v['other_seeds']):.2f}) | "
             f"{' / '.join(f'{a:.2f}' for a in v['other_archs'].values())} | {v['margin']:.2f} |"
             for k, v in results.items() if "receiver" in v]
    return "\n".join(sets) + "\n\n" + "\n".join(keys)


def main() -> None:
    from securedd.config import EvalConfig
    from securedd.data import load_splits

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=CASES)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(1)
    train, test = load_splits("digits")
    eval_cfg = EvalConfig(runs=3, epochs=300, dsa=False)  # the demo's protocol
    for case in args.cases:
        if case in load_results(args.results):
            print(f"{case}: done")
            continue
        found = run_case(case, train, test, eval_cfg)
        results = load_results(args.results)
        results[case] = found
        save_results(args.results, results)
        print(f"{case}: {found}", flush=True)
    print(render(load_results(args.results)))


if __name__ == "__main__":
    main()
