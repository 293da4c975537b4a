"""DD's fast domain adaptation, digits -> MNIST (LeNet), beside the DD paper's Table 2.

Trains a pool of ``--networks`` LeNets on scikit-learn's digits converted to MNIST's shape
and normalisation (``securedd pool --as mnist``), keeps the last ``--held-out`` for
scoring, distils 100 MNIST images in 10 steps x 3 epochs on the others (``securedd
adapt``), and scores on the held-out networks: no adaptation, the distilled steps, random
real MNIST images in the same steps (learned rates, best fixed rate), and fine-tuning on
all 60,000 MNIST training images for ``--finetune-epochs``.

The paper's pairs are MNIST -> USPS, USPS -> MNIST and SVHN -> MNIST; our shared data holds
USPS's test split only, so the source here is digits (8x8, upsampled), a larger domain gap.
Results go to ``benchmarks/results/adapt.json`` (keyed by the settings).

Paper, USPS -> MNIST (the nearest pair; pre-trained networks drawn at random, as here):
distilled 92.74 ± 1.38%, random real images 84.40 ± 3.27%, no adaptation 90.43 ± 2.97%,
training on many real images 98.60 ± 0.53%. SVHN -> MNIST, a larger gap: 85.21 ± 4.73%,
81.68 ± 3.78%, 51.64 ± 2.77%, 98.60 ± 0.53%.

Usage:
    python benchmarks/adapt.py --data-root $SECUREDD_DATA --networks 20 --held-out 5 --iterations 300
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

RESULTS = HERE / "results" / "adapt.json"


def main() -> None:
    from securedd.api import distill
    from securedd.config import RunConfig, apply_overrides
    from securedd.data import dataset_spec, load_dataset
    from securedd.evaluation.applications import adaptation_report
    from securedd.training.pool import train_pool

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    p.add_argument("--networks", type=int, default=20, help="pool size (LeNets trained on the source)")
    p.add_argument("--held-out", type=int, default=5, help="pool networks kept for scoring")
    p.add_argument("--pool-epochs", type=int, default=30, help="training epochs per pool network")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra method overrides")
    p.add_argument("--work", type=Path, default=HERE / "work" / "adapt", help="where the pool and set are kept")
    args = p.parse_args()
    if not args.data_root:
        p.error("--data-root (or SECUREDD_DATA) is required")
    key = "|".join(map(str, [args.networks, args.held_out, args.pool_epochs, args.iterations, args.finetune_epochs,
                             *args.set]))
    results = load_results(RESULTS)
    if key not in results:
        source = load_dataset("digits", "train")
        train = load_dataset("mnist", "train", root=args.data_root)
        test = load_dataset("mnist", "test", root=args.data_root, spec=train.spec)
        start = time.perf_counter()
        pool = train_pool("lenet", source, args.work / f"digits-as-mnist-{args.pool_epochs}ep", count=args.networks,
                          epochs=args.pool_epochs, seed=0, target=dataset_spec("mnist", root=args.data_root))
        pool_s = time.perf_counter() - start
        cfg = apply_overrides(RunConfig(), [
            "data.name='mnist'", "model='lenet'", "method.name='dd'", "method.ipc=10", "method.steps=10",
            "method.epochs=3", f"method.iterations={args.iterations}", "method.init='pool'", f"method.pool='{pool}'",
            f"method.held_out={args.held_out}", "seed=0", *args.set])
        start = time.perf_counter()
        art = distill(cfg, out=args.work / f"adapt-{hashlib.sha256(key.encode()).hexdigest()[:12]}.safetensors",
                      real=train)
        distil_s = time.perf_counter() - start
        report = adaptation_report(art, test, train, finetune_epochs=args.finetune_epochs)
        results[key] = {**report.to_dict(), "table": report.table(), "pool_seconds": round(pool_s, 1),
                        "distill_seconds": round(distil_s, 1), "learned_lrs": [round(v, 4) for v in art.lrs.tolist()]}
        save_results(RESULTS, results)
    print(results[key]["table"])


if __name__ == "__main__":
    main()
