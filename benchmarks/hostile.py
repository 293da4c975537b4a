"""A registered client that lies to the federated server, under every aggregator, on digits.

Five clients with IID shards of digits distil 10 images per class with DM (one iteration
per round, ConvNet-2 matching network) for 20 rounds, server momentum 0.5, in this
process (``run_in_process``). Worker 0 is hostile (:mod:`securedd.federated.hostile`):

- ``weight=1e30`` and ``weight=nan``: the honest set with a forged example count;
- ``range``: the first image pushed 99 standard deviations above the sent set's maximum
  every round (the exploit that escalated a spread-relative cap);
- ``near-bound``: a fixed-direction change every round at 95% of the cap it expects.

Each attacked run is compared with the honest-only run of the same aggregator: the final
test accuracy of 3 fresh ConvNet-3 models (300 epochs, no augmentation; mean ± std), the
RMS distance between the two sets, whether the attacked set's values stay inside the
honest set's value range, and the replies the server refused or re-weighted (from its log).

Usage:
    python benchmarks/hostile.py
    python benchmarks/hostile.py --aggregators median --attacks honest near-bound

Results go to ``benchmarks/results/hostile.json``, keyed by aggregator and attack; a
finished case is not repeated. One thread.
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
ATTACKS = ["honest", "weight=1e30", "weight=nan", "range", "near-bound"]
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


def run_case(aggregator: str, attack: str, out: Path) -> tuple[object, dict]:
    from securedd.config import RunConfig, apply_overrides
    from securedd.federated.apps import FederationSettings, run_in_process
    from securedd.federated.hostile import Hostile

    hostile = None
    if attack != "honest":
        kind, _, value = attack.partition("=")
        hostile = Hostile(kind, weight=float(value)) if value else Hostile(kind)
    cfg = apply_overrides(RunConfig(), BASE)
    counter = _Count()
    server_log = logging.getLogger("securedd.federated.apps")
    server_log.addHandler(counter)
    start = time.perf_counter()
    try:
        art = run_in_process(FederationSettings(cfg, clients=5, rounds=20, aggregator=aggregator,
                                                server_momentum=0.5, hostile=hostile, out=str(out), progress=False))
    finally:
        server_log.removeHandler(counter)
    return art, {"distill_seconds": round(time.perf_counter() - start, 1), "refused": counter.refused,
                 "reweighted": counter.reweighted, "skipped_rounds": counter.skipped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aggregators", nargs="+", default=AGGREGATORS)
    ap.add_argument("--attacks", nargs="+", default=ATTACKS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from securedd.api import evaluate
    from securedd.artifacts import load_artifact
    from securedd.config import EvalConfig
    from securedd.data import load_dataset

    test = load_dataset("digits", "test")
    results = load_results(RESULTS)
    work = Path(tempfile.mkdtemp())
    for aggregator in args.aggregators:
        honest_path = work / f"{aggregator}-honest.safetensors"
        for attack in ["honest", *[a for a in args.attacks if a != "honest"]]:
            key = f"{aggregator}|{attack}"
            out = honest_path if attack == "honest" else work / f"{aggregator}-{attack}.safetensors"
            if key in results and (attack != "honest" or honest_path.exists()):
                continue
            art, record = run_case(aggregator, attack, out)
            arch = evaluate(art, config=EvalConfig(models=("convnet",), runs=3, epochs=300, dsa=False), test=test,
                            progress=False).archs[0]
            record.update(accuracy_mean=round(arch.mean, 2), accuracy_std=round(arch.std, 2),
                          accuracies=[round(a, 2) for a in arch.accuracies])
            if attack != "honest":
                honest = load_artifact(honest_path).images.double()
                images = art.images.double()  # type: ignore[attr-defined]
                record["rms_distance_to_honest"] = round(float((images - honest).pow(2).mean().sqrt()), 4)
                record["inside_honest_value_range"] = bool(images.min() >= honest.min()
                                                           and images.max() <= honest.max())
                honest_accs = results[f"{aggregator}|honest"]["accuracies"]
                record["accuracy_inside_honest_range"] = min(honest_accs) <= arch.mean <= max(honest_accs)
            results[key] = record
            save_results(RESULTS, results)
    for key in dict.fromkeys(f"{g}|{a}" for g in args.aggregators for a in ["honest", *args.attacks]):
        if key not in results:
            continue
        r = results[key]
        extra = "" if key.endswith("|honest") else (
            f"  dist {r['rms_distance_to_honest']:.3f}  in-range {r['inside_honest_value_range']}"
            f"  acc-in-range {r['accuracy_inside_honest_range']}")
        print(f"{key:<28} {r['accuracy_mean']:6.2f} ± {r['accuracy_std']:.2f}  refused {r['refused']}  "
              f"reweighted {r['reweighted']}  skipped {r['skipped_rounds']}{extra}", flush=True)


if __name__ == "__main__":
    main()
