"""Federated distillation (SFDD) on MNIST or CIFAR-10 beside centralised DC and the SFDD paper.

Every run distils a ``--dataset`` set with DC's gradient matching (ConvNet-3, noise init, the
IPC's outer/inner schedule) from the same seed and for the same number of iterations, and
trains ``--models`` fresh ConvNet-3 models on it with securedd's default evaluation
protocol (the same seeds for every run). A run is one of:

- ``dc``: centralised DC on all 60,000 training images, ``--rounds`` iterations;
- ``sfdd:clients=Z[,defence=D,...]``: Z clients with IID shards, ``--rounds`` rounds of
  one DC iteration per client on its shard, aggregated by the server (``aggregator=``
  mean, the paper's, or fedavg, median, trimmed_mean; ``momentum=`` the server's FedAvgM
  momentum, 0 by default). Defences: ``ldpo-rld`` (k=9, eps=9/11; ``draw=`` class, one
  distribution per class and matching step, or image, one per image), ``localdp-laplace``
  (``scale=``), ``localdp-gaussian`` (``noise=`` multiplier or ``epsilon=``, the noise that
  spends that epsilon over ``--rounds``, ``clip=``; epsilon from the RDP accountant at delta
  1e-5).
- ``leakage[:defence=D,...]``: the honest-but-curious server's attack on client 0's first
  round of a 5-client federation (``securedd attack leakage``), the paper's setting: the
  attack-friendly ConvNet (sigmoid, no pooling), the worker's initialisation known, one
  real image per class; ``--attack-steps`` L-BFGS steps. Standardised MSE, PSNR, SSIM.
- ``doorping:clients=Z[,malicious=K,aggregator=A,batch=B,bounded=0]``: ``securedd attack
  doorping``, SFDD with K Doorping workers (default (Z - 1) // 2), B stamped images per
  trigger step (default all), the trigger kept in the pixel range unless ``bounded=0`` (the
  original attack's unconstrained trigger), aggregated by A (mean, median, trimmed_mean, or fltrust, the server's
  trust score against 10 clean images per class of its own); clean test accuracy (CTA) and
  attack success rate (ASR, stamped test images of other classes taken for class 0;
  ``asr_inclusive`` counts all) of the ``--models`` networks trained on the final set, with
  worker 0's final trigger. PNGs next to the set: the trigger on test images
  (``_trigger.png``) and the set (``_set.png``).

The clients run one after another in this process over the federation's own server loop
(``securedd.federated.apps.run_in_process``): the Flower apps do the same work with the
messages carried by Flower, and a test checks that both give the same set.

Paper (Table 2, ConvNet, 5 clients, their full budget): MNIST IPC 1, centralised DC 91.92%
vs SFDD 92.02%; IPC 10, 97.49% vs 97.58%. Table 3, leakage MSE on MNIST: 0.245 without
LDPO-RLD, 1.575 with it; Table 4: LDPO-RLD moves MNIST accuracy by -0.48 points.

Usage:
    python benchmarks/sfdd.py --data-root $SECUREDD_DATA --ipc 1 --rounds 100 --runs dc sfdd:clients=5
    python benchmarks/sfdd.py ... --runs sfdd:clients=10 sfdd:clients=15
    python benchmarks/sfdd.py ... --runs sfdd:clients=5,defence=ldpo-rld sfdd:clients=5,defence=localdp-gaussian,noise=1
    python benchmarks/sfdd.py ... --runs leakage leakage:defence=ldpo-rld --attack-steps 10
    python benchmarks/sfdd.py ... --runs doorping:clients=5 doorping:clients=5,aggregator=median
    python benchmarks/sfdd.py ... --runs sfdd:clients=5,defence=localdp-gaussian,epsilon=8 \
        leakage:defence=localdp-gaussian,epsilon=8
    python benchmarks/sfdd.py ... --table5 none defence=ldpo-rld defence=localdp-gaussian,epsilon=8

Results go to ``benchmarks/results/sfdd.json`` (``--results`` to change), keyed by the
run and its settings; a finished run is not repeated.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import load_results, save_results  # noqa: E402

RESULTS = HERE / "results" / "sfdd.json"
DEFENCE_FLAGS = {"k": ("k", int), "eps": ("eps", float), "dispersion": ("dispersion", str), "draw": ("draw", str),
                 "clamp": ("clamp", float), "scale": ("scale", float), "clip": ("clip", float),
                 "noise": ("noise_multiplier", float)}


def parse_run(text: str) -> tuple[str, dict[str, str]]:
    """``sfdd:clients=5,defence=ldpo-rld`` -> ``("sfdd", {"clients": "5", "defence": "ldpo-rld"})``."""
    name, _, rest = text.partition(":")
    options = dict(item.split("=", 1) for item in rest.split(",") if item)
    if name not in ("dc", "sfdd", "leakage", "doorping") or (name == "dc" and options):
        raise SystemExit(f"unknown run '{text}': use dc, sfdd:clients=Z[,defence=...,aggregator=...] or "
                         f"leakage[:defence=...] or doorping:clients=Z[,malicious=K,aggregator=A]")
    return name, options


def _defence(options: dict[str, str], rounds: int):
    """The client defence of ``options``; ``epsilon=E`` (Gaussian LocalDP) calibrates the noise to ``rounds``."""
    from securedd.defences import make_defence
    from securedd.defences.accounting import noise_for_epsilon

    name = options.get("defence", "none")
    settings = {DEFENCE_FLAGS[k][0]: DEFENCE_FLAGS[k][1](v) for k, v in options.items() if k in DEFENCE_FLAGS}
    if "epsilon" in options:
        settings["noise_multiplier"] = noise_for_epsilon(float(options["epsilon"]), rounds)
    return None if name == "none" else make_defence(name, **settings)


def run_leakage(options: dict[str, str], cfg, steps: int, out: Path, rounds: int) -> dict:
    """The leakage attack on client 0's first round; its metrics (and a PNG next to ``out``)."""
    import dataclasses

    from securedd.config import apply_overrides
    from securedd.distill.synthetic import class_labels
    from securedd.federated.apps import client_shard
    from securedd.federated.leakage import LeakageSettings, leakage_attack, observe_round
    from securedd.federated.server import initial_images
    from securedd.federated.settings import FederationSettings
    from securedd.visualize import save_pairs

    cfg = apply_overrides(dataclasses.replace(cfg, model="convnet_attack"), ["method.batch_real=1",
                                                                            "method.outer_loop=1",
                                                                            "method.compile=false"])
    clients = int(options.get("clients", 5))
    shard = client_shard(cfg, clients, "iid", 0)
    sent = initial_images(FederationSettings(cfg, clients=clients))
    start = time.perf_counter()
    seen = observe_round(cfg, shard, sent, class_labels(shard.spec.num_classes, 1),
                         defence=_defence(options, rounds))
    result = leakage_attack(seen, shard.spec, LeakageSettings(iterations=steps), progress=True)
    spec = shard.spec
    save_pairs(spec.denormalize(result.real), spec.denormalize(result.reconstruction),
               [""] * len(result.labels), out.with_suffix(".png"), rows=("real", "recon."))
    return {**result.to_dict(), "steps": len(result.losses), "seconds": round(time.perf_counter() - start, 1)}


def run_doorping(options: dict[str, str], cfg, out: Path, models: int, test) -> dict:
    """The ``doorping`` attack (``securedd attack doorping``) on this federation; its CTA and ASR.

    Writes the trigger on test images next to ``out`` (``_trigger.png``) and the final set
    (``_set.png``).
    """
    from securedd.attacks.doorping import DoorpingAttack, DoorpingTarget, save_trigger
    from securedd.federated.doorping import trigger_pixels
    from securedd.federated.settings import FederationSettings
    from securedd.visualize import save_grid

    clients = int(options.get("clients", 5))
    attack = DoorpingAttack(malicious=int(options["malicious"]) if "malicious" in options else None,
                            batch=int(options.get("batch", 0)), bounded=options.get("bounded", "1") != "0",
                            models=models)
    settings = FederationSettings(cfg, clients=clients, rounds=cfg.method.iterations, min_clients=clients,
                                  aggregator=options.get("aggregator", "mean"),
                                  server_momentum=float(options.get("momentum", 0.0)), out=str(out))
    start = time.perf_counter()
    result = attack.run(DoorpingTarget(settings, test), progress=True)
    save_trigger(test, result.trigger, out.with_name(out.stem + "_trigger.png"))
    save_grid(result.artifact, out.with_name(out.stem + "_set.png"))
    found = result.to_dict()
    return {key: found[key] for key in found if key not in ("artifact", "sha256")} | {
        "trigger_pixels": [round(v, 3) for v in trigger_pixels(result.trigger, result.artifact.spec)],
        "seconds": round(time.perf_counter() - start, 1), "sha256": result.artifact.sha256,
        "dropped_replies": sum(len(h.get("dropped", [])) for h in
                               result.artifact.metadata["info"]["federated"].get("history", [])),
        "doorping": result.artifact.metadata["info"]["federated"].get("doorping")}


def run_one(name: str, options: dict[str, str], cfg, out: Path):
    """Distil one run's set; returns ``(artifact, seconds)``."""
    from securedd.api import distill
    from securedd.federated.apps import run_in_process
    from securedd.federated.settings import FederationSettings

    start = time.perf_counter()
    if name == "dc":
        art = distill(cfg, out=out, resume=Path(str(out) + ".ckpt").is_file())
    else:
        defence = _defence(options, cfg.method.iterations)
        clients = int(options.get("clients", 5))
        settings = FederationSettings(cfg, clients=clients, rounds=cfg.method.iterations,
                                      aggregator=options.get("aggregator", "mean"), min_clients=clients,
                                      server_momentum=float(options.get("momentum", 0.0)),
                                      defence=defence, out=str(out))
        art = run_in_process(settings)
    return art, time.perf_counter() - start


def table5(args: argparse.Namespace, arms: list[str]) -> None:
    """Print Table 5 (accuracy beside the server's leakage, per defence arm) and plot one against the other.

    An arm is a defence's options (``defence=ldpo-rld``, ``defence=localdp-gaussian,epsilon=8``;
    ``none`` for no defence): its accuracy is the run ``sfdd:clients=5,ARM`` and its leakage
    the run ``leakage:ARM``, both already in the results.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from securedd.defences.accounting import PrivacyLedger

    results = load_results(args.results)
    rows = []
    for arm in arms:
        tail = "" if arm == "none" else arm
        options = dict(item.split("=", 1) for item in tail.split(",") if item)
        acc_key = f"{args.dataset}|ipc{args.ipc}|{args.rounds}|seed{args.seed}|{args.models}x|sfdd:clients=5" + \
            (f",{tail}" if tail else "")
        rounds = f"|{args.rounds}rounds" if "epsilon" in options else ""
        leak_key = f"{args.dataset}|leakage|{args.attack_steps}steps{rounds}|seed{args.seed}|leakage" + \
            (f":{tail}" if tail else "")
        acc, leak = results.get(acc_key), results.get(leak_key)
        if acc is None or leak is None:
            print(f"{arm}: missing {'accuracy (' + acc_key + ')' if acc is None else ''} "
                  f"{'leakage (' + leak_key + ')' if leak is None else ''}")
            continue
        privacy = acc.get("privacy") or {}
        eps = {}
        if privacy.get("mechanism") == "gaussian":
            for name in ("rdp", "pld"):
                eps[name] = PrivacyLedger("gaussian", privacy["noise_multiplier"], privacy["rounds"],
                                          privacy["delta"], name).epsilon()
        rows.append((arm, acc["accuracy_mean"], acc["accuracy_std"], leak["standardised_mse"], leak["psnr"],
                     leak["ssim"], eps))
    print(f"| defence | accuracy | leakage MSE | PSNR | SSIM | epsilon RDP / PLD |  ({args.dataset}, IPC {args.ipc}, "
          f"{args.rounds} rounds, {args.attack_steps} attack steps)")
    print("|---|---|---|---|---|---|")
    for arm, mean, std, mse, psnr, ssim, eps in rows:
        spent = f"{eps['rdp']:.2f} / {eps['pld']:.2f}" if eps else "infinite (no defence)" if arm == "none" else \
            "none (no formal guarantee)"
        print(f"| {arm} | {mean:.2f} ± {std:.2f} | {mse:.3f} | {psnr:.2f} | {ssim:.3f} | {spent} |")
    if rows:
        fig, ax = plt.subplots(figsize=(5, 4))
        for arm, mean, std, mse, *_ in rows:
            ax.errorbar(mse, mean, yerr=std, fmt="o", capsize=3)
            ax.annotate(arm.replace("defence=", ""), (mse, mean), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
        ax.set_xlabel("server's leakage: standardised MSE (higher leaks less; about 2 is no information)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"SFDD, {args.dataset}, 5 clients, IPC {args.ipc}, {args.rounds} rounds", fontsize=9)
        out = args.results.with_name(f"table5_{args.dataset}_ipc{args.ipc}_{args.rounds}.png")
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        print(f"wrote {out}")


def main() -> None:
    from securedd.api import evaluate
    from securedd.config import RunConfig, apply_overrides
    from securedd.data import dataset_spec, load_dataset

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    p.add_argument("--dataset", default="mnist", choices=("mnist", "cifar10"))
    p.add_argument("--ipc", type=int, default=1)
    p.add_argument("--rounds", type=int, default=100, help="DC iterations = federated rounds")
    p.add_argument("--runs", nargs="+", default=["dc", "sfdd:clients=5"], help="see the module's text")
    p.add_argument("--models", type=int, default=3, help="evaluation models per set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--attack-steps", type=int, default=10, help="L-BFGS steps of a leakage run (20 evaluations each)")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--work", type=Path, default=HERE / "work" / "sfdd", help="where sets and checkpoints are kept")
    p.add_argument("--table5", nargs="+", metavar="ARM",
                   help="instead of running: Table 5 from the results, each ARM a defence's options or none")
    args = p.parse_args()
    if args.table5:
        table5(args, args.table5)
        return
    if not args.data_root:
        p.error("--data-root (or SECUREDD_DATA) is required")
    runs = [(text, *parse_run(text)) for text in args.runs]
    cfg = apply_overrides(RunConfig(), [
        f"data.name='{args.dataset}'", f"data.root='{args.data_root}'", "model='convnet'", "method.name='dc'",
        f"method.ipc={args.ipc}", f"method.iterations={args.rounds}", f"seed={args.seed}"])
    test = None
    for text, name, options in runs:
        key = f"{args.dataset}|ipc{args.ipc}|{args.rounds}|seed{args.seed}|{args.models}x|{text}"
        results = load_results(args.results)
        if key in results:
            print(f"{key}: done")
            continue
        out = args.work / (key.replace("|", "_").replace(":", "-").replace(",", "_").replace("=", "") + ".safetensors")
        out.parent.mkdir(parents=True, exist_ok=True)
        if name == "leakage":
            key = f"{args.dataset}|leakage|{args.attack_steps}steps|seed{args.seed}|{text}"
            if "epsilon" in options:  # the noise is calibrated to the federation's rounds
                key = f"{args.dataset}|leakage|{args.attack_steps}steps|{args.rounds}rounds|seed{args.seed}|{text}"
            out = args.work / f"{args.dataset}_leakage_{args.attack_steps}steps_seed{args.seed}_{text.replace(':', '-')}.png"
            if key not in load_results(args.results):
                found = run_leakage(options, cfg, args.attack_steps, out, args.rounds)
                results = load_results(args.results)
                results[key] = {"run": text, **found}
                save_results(args.results, results)
                print(f"{key}: {found}", flush=True)
            continue
        if test is None:
            test = load_dataset(args.dataset, "test", root=args.data_root,
                                spec=dataset_spec(args.dataset, root=args.data_root))
        if name == "doorping":
            found = run_doorping(options, cfg, out, args.models, test)
            results = load_results(args.results)
            results[key] = {"run": text, **found}
            save_results(args.results, results)
            print(f"{key}: CTA {found['cta_mean']:.2f} ± {found['cta_std']:.2f}, ASR {found['asr_mean']:.2f} ± "
                  f"{found['asr_std']:.2f}", flush=True)
            continue
        art, seconds = run_one(name, options, cfg, out)
        start = time.perf_counter()
        report = evaluate(art, runs=args.models, test=test, seed=args.seed, progress=False)
        arch = report.archs[0]
        results = load_results(args.results)
        results[key] = {"run": text, "accuracy_mean": round(arch.mean, 2), "accuracy_std": round(arch.std, 2),
                        "accuracies": [round(a, 2) for a in arch.accuracies], "distill_seconds": round(seconds, 1),
                        "eval_seconds": round(time.perf_counter() - start, 1),
                        "privacy": art.metadata.get("privacy"),
                        "history": (art.metadata.get("info") or {}).get("federated", {}).get("history", [])[-1:]}
        save_results(args.results, results)
        print(f"{key}: {arch.mean:.2f} ± {arch.std:.2f} (distil {seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
