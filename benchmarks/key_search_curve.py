"""The key search as a curve: what an eavesdropper finds against the keys it tries, and the
CPU-time an exhaustive search expects to need.

Takes the MNIST SecDD set of ``benchmarks/intercept.py`` (LeNet key, 10 learned images;
distilled there, or here at the same settings, and kept in ``--work``) and runs the key
search (``securedd attack key-search``) for two eavesdroppers:

- ``knows the architecture`` (the worst case): LeNet with the Xavier scheme, ``--known``
  random 63-bit seeds;
- ``does not``: every architecture of the zoo that takes 28x28 grey images, both
  initialisation schemes, ``--unknown`` keys round-robin.

Each candidate's test accuracy is scored on the same ``--test-images`` test images (seeded),
a sample that keeps the large architectures affordable; the key holder is scored on it and on
the full split. The adversary's cost per key (replay and the set's own loss, without the
scoring) is measured, and the expected CPU-years of an exhaustive search over each key space
extrapolated from it. It also records the bytes sent (the artifact) against the bytes of the
key's trained network (its weights as safetensors), the alternative of sending the model.
Results go to ``benchmarks/results/key_search_curve.json``, the plot to
``docs/images/secdd_key_search_curve.png``.

Usage:
    python benchmarks/key_search_curve.py --data-root $SECUREDD_DATA
    python benchmarks/key_search_curve.py ... --known 200 --unknown 30
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from intercept import LEARN, add_set_flags, open_set  # noqa: E402
from results_io import load_results, save_results  # noqa: E402

RESULTS = HERE / "results" / "key_search_curve.json"
PLOT = HERE.parent / "docs" / "images" / "secdd_key_search_curve.png"


def main() -> None:
    from safetensors.torch import save

    from securedd.attacks.key_search import (
        candidate_keys,
        expected_search_years,
        fitting_models,
        key_search,
        key_space,
        replay_key,
        trained_network,
    )
    from securedd.visualize import save_search_curve

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_flags(p, RESULTS)
    p.add_argument("--known", type=int, default=2000, help="keys the eavesdropper who knows the architecture tries")
    p.add_argument("--unknown", type=int, default=150, help="keys the eavesdropper who does not tries")
    p.add_argument("--test-images", type=int, default=2000, help="test images each candidate is scored on")
    p.add_argument("--plot", type=Path, default=PLOT)
    args = p.parse_args()
    setting, folder, _, test, art, key = open_set(p, args, LEARN)
    sample = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[: args.test_images])
    models = fitting_models(art)
    attackers = {
        "knows the architecture": (candidate_keys([key.model], args.known, args.known, seed=4,
                                                  schemes=(key.init_scheme,)), 1, 1),
        "does not": (candidate_keys(models, args.unknown, args.unknown, seed=5, schemes=("xavier", "default")),
                     len(models), 2),
    }
    name = f"{setting}|known={args.known}|unknown={args.unknown}|test={args.test_images}"
    results = load_results(args.results)
    if name not in results:
        entry: dict = {"key_holder": round(replay_key(art, key, test).accuracy, 2),
                       "key_holder_on_sample": round(replay_key(art, key, sample).accuracy, 2),
                       "artifact_bytes": (folder / "secret.safetensors").stat().st_size,
                       "weights_bytes": len(save(trained_network(art, key).state_dict())),
                       "test_images": args.test_images, "threads": args.threads,
                       "load_1min_before": round(os.getloadavg()[0], 2), "attackers": {}}
        for label, (keys, n_models, n_schemes) in attackers.items():
            report = key_search(art, sample, keys, progress=True)
            assert report.seconds_per_key is not None
            space = key_space(n_models, n_schemes)
            entry["attackers"][label] = {
                "tried": len(keys), "models": n_models, "schemes": n_schemes, "curve": report.curve(),
                "pick": round(report.pick.accuracy, 2), "pick_model": report.pick.model,
                "best": round(report.best.accuracy, 2), "by_model": report.by_model(),
                "seconds_per_key": report.seconds_per_key, "key_space": space,
                "expected_cpu_years": expected_search_years(space, report.seconds_per_key)}
            print(f"{label}: pick {report.pick.accuracy:.2f}%, best {report.best.accuracy:.2f}% of {len(keys)}; "
                  f"{report.seconds_per_key:.3g} s/key, {entry['attackers'][label]['expected_cpu_years']:.3g} "
                  "CPU-years expected", flush=True)
        results[name] = entry
        save_results(args.results, results)
    entry = results[name]
    curves = {label: a["curve"] for label, a in entry["attackers"].items()}
    print(f"wrote {save_search_curve(curves, args.plot, key_accuracy=entry['key_holder_on_sample'])}")


if __name__ == "__main__":
    main()
