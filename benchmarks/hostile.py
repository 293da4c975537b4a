"""A registered client that lies to the federated server, under every aggregator, on digits.

Five clients with IID shards of digits distil 10 images per class with DM (one iteration
per round, ConvNet-2 matching network) for 200 rounds (``--rounds``), server momentum 0.5,
in this process (``run_in_process``). Worker 0 is hostile in every round
(:mod:`securedd.federated.hostile`):

- ``weight=1e30`` and ``weight=nan``: the honest set with a forged example count;
- ``range``: the first image pushed 99 standard deviations above the sent set's maximum
  every round (the exploit that escalated a spread-relative cap);
- ``near-bound``: a fixed-direction change every round at 95% of the cap it expects;
- ``absent``: worker 0 never replies (the four honest clients alone).

Each attacked run is compared with the honest-only run of the same aggregator: the final
test accuracy of 3 fresh ConvNet-3 models (300 epochs, no augmentation; mean ± std), the
RMS distance between the two sets, whether the attacked set is bit for bit the set of the
four honest clients alone (``absent``), whether its accuracy lies inside the honest run's
range over its 3 models, and the replies the server refused or re-weighted (from its log).

Usage:
    python benchmarks/hostile.py
    python benchmarks/hostile.py --aggregators median --attacks honest near-bound

Results go to ``benchmarks/results/hostile.json``, keyed by rounds, aggregator and attack;
a finished case is not repeated. One thread.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
from results_io import load_results, save_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "hostile.json"
AGGREGATORS = ["mean", "fedavg", "median", "trimmed_mean"]
ATTACKS = ["honest", "absent", "weight=1e30", "weight=nan", "range", "near-bound"]
BASE = ["data.name=digits", "method.name=dm", "method.ipc=10", "model=convnet_tiny", "seed=0"]


class _Count(logging.Handler):
    """Counts the server's refusals and re-weightings of each node."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.refused: dict[str, int] = {}
        self.reweighted: dict[str, int] = {}
        self.skipped = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "refused the reply of node" in text:
            node = text.split("node ", 1)[1].split(":", 1)[0]
            self.refused[node] = self.refused.get(node, 0) + 1
        elif "examples; counted as" in text:
            node = text.split("node ", 1)[1].split(" ", 1)[0]
            self.reweighted[node] = self.reweighted.get(node, 0) + 1
        elif "the set is kept" in text:
            self.skipped += 1


def run_case(aggregator: str, attack: str, rounds: int, out: Path) -> tuple[object, dict]:
    from securedd.config import RunConfig, apply_overrides
    from securedd.federated.apps import answer, run_in_process
    from securedd.federated.hostile import Hostile
    from securedd.federated.server import run_server
    from securedd.federated.settings import FederationSettings

    hostile = None
    if attack not in ("honest", "absent"):
        kind, _, value = attack.partition("=")
        hostile = Hostile(kind, weight=float(value)) if value else Hostile(kind)
    cfg = apply_overrides(RunConfig(), BASE)
    counter = _Count()
    server_log = logging.getLogger("securedd.federated.server")
    server_log.addHandler(counter)
    start = time.perf_counter()
    settings = FederationSettings(cfg, clients=5, rounds=rounds, aggregator=aggregator, server_momentum=0.5,
                                  hostile=hostile, out=str(out), progress=False)

    def without_worker_0(images: torch.Tensor, record: dict) -> tuple[range, list]:
        return range(1, 5), [answer(node, images, record) for node in range(1, 5)]  # only the four are asked

    try:
        art = run_server(settings, without_worker_0) if attack == "absent" else run_in_process(settings)
    finally:
        server_log.removeHandler(counter)
    return art, {"distill_seconds": round(time.perf_counter() - start, 1), "refused": counter.refused,
                 "reweighted": counter.reweighted, "skipped_rounds": counter.skipped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aggregators", nargs="+", default=AGGREGATORS)
    ap.add_argument("--attacks", nargs="+", default=ATTACKS)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from securedd.api import evaluate
    from securedd.artifacts import load_artifact
    from securedd.config import EvalConfig
    from securedd.data import load_dataset

    test = load_dataset("digits", "test")
    results = load_results(args.results)
    work = Path(tempfile.mkdtemp())
    for aggregator in args.aggregators:
        honest_path = work / f"{args.rounds}-{aggregator}-honest.safetensors"
        for attack in ["honest", *[a for a in args.attacks if a != "honest"]]:
            key = f"rounds={args.rounds}|{aggregator}|{attack}"
            out = work / f"{args.rounds}-{aggregator}-{attack}.safetensors"
            if key in results and (attack not in ("honest", "absent") or out.exists()):
                continue
            art, record = run_case(aggregator, attack, args.rounds, out)
            arch = evaluate(art, config=EvalConfig(models=("convnet",), runs=3, epochs=300, dsa=False), test=test,
                            progress=False).archs[0]
            record.update(accuracy_mean=round(arch.mean, 2), accuracy_std=round(arch.std, 2),
                          accuracies=[round(a, 2) for a in arch.accuracies])
            if attack != "honest":
                honest = load_artifact(honest_path).images.double()
                images = art.images.double()  # type: ignore[attr-defined]
                record["rms_distance_to_honest"] = round(float((images - honest).pow(2).mean().sqrt()), 4)
                absent = work / f"{args.rounds}-{aggregator}-absent.safetensors"
                record["same_as_honest_clients_alone"] = (bool(torch.equal(images, load_artifact(absent).images.double()))
                                                         if absent.exists() and attack != "absent" else None)
                honest_accs = results[f"rounds={args.rounds}|{aggregator}|honest"]["accuracies"]
                record["accuracy_inside_honest_range"] = min(honest_accs) <= arch.mean <= max(honest_accs)
            results[key] = record
            save_results(args.results, results)
    for key in dict.fromkeys(f"rounds={args.rounds}|{g}|{a}" for g in args.aggregators
                             for a in ["honest", *args.attacks]):
        if key not in results:
            continue
        r = results[key]
        extra = "" if key.endswith("|honest") else (
            f"  dist {r['rms_distance_to_honest']:.3f}  = absent {r['same_as_honest_clients_alone']}"
            f"  acc-in-range {r['accuracy_inside_honest_range']}")
        print(f"{key:<40} {r['accuracy_mean']:6.2f} ± {r['accuracy_std']:.2f}  refused {r['refused']}  "
              f"reweighted {r['reweighted']}  skipped {r['skipped_rounds']}{extra}", flush=True)


if __name__ == "__main__":
    main()
