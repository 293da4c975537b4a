"""What ``torch.compile`` buys the evaluation protocol on a CPU, and what it costs up front.

On CIFAR-10 shapes (a set of 100 random 3x32x32 images, ConvNet-3, DSA, batch 256 trained
in pieces of 16) this times ``train_model`` eagerly and compiled, each in a fresh process:
the first epoch (which for the compiled side includes compilation, as far as PyTorch's
on-disk kernel cache has not already done it) and the median of the later epochs. It then
times ``score_model`` on 10,000 such test images, eager in batches of 64 (the CPU default)
and compiled in batches of 64 and 256.

Usage:
    python benchmarks/compile_gain.py [--epochs 40]
Results: benchmarks/results/compile_gain.json (with the CPU model and the load at the start).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import cpu_model, save_results  # noqa: E402

RESULTS = HERE / "results" / "compile_gain.json"
STRATEGY = "color_crop_cutout_flip_scale_rotate"


def child(mode: str, epochs: int) -> dict:
    import torch

    from securedd.data import dataset_spec
    from securedd.data.spec import RealData
    from securedd.models import create_model
    from securedd.training import TrainSettings, score_model, train_model

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 3, 32, 32, generator=gen), torch.arange(100) % 10
    model = create_model("convnet", (3, 32, 32), 10, generator=gen)
    stamps = [time.perf_counter()]
    train_model(model, x, y, TrainSettings(epochs=epochs, dsa_strategy=STRATEGY, compile=mode == "compiled"), gen,
                on_epoch=lambda epoch, net: stamps.append(time.perf_counter()))
    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    out = {"first_epoch_s": round(steps[0], 2), "epoch_ms": round(statistics.median(steps[1:]) * 1e3, 1)}
    test = RealData(torch.randn(10_000, 3, 32, 32, generator=gen), torch.arange(10_000) % 10, dataset_spec("cifar10"))
    batches = (64,) if mode == "eager" else (64, 256)
    for batch in batches:
        score_model(model, test, batch_size=batch, compile=mode == "compiled")  # warm-up (and compilation)
        start = time.perf_counter()
        score_model(model, test, batch_size=batch, compile=mode == "compiled")
        out[f"score_s_batch{batch}"] = round(time.perf_counter() - start, 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs)))
        return
    results: dict = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_1min_at_start": os.getloadavg()[0]},
                     "epochs": args.epochs}
    for mode in ("eager", "compiled"):
        run = subprocess.run([sys.executable, __file__, "--child", mode, "--epochs", str(args.epochs)],
                             capture_output=True, text=True, check=True)
        results[mode] = json.loads(run.stdout.strip().splitlines()[-1])
        print(mode, json.dumps(results[mode]), flush=True)
    results["training_speedup"] = round(results["eager"]["epoch_ms"] / results["compiled"]["epoch_ms"], 2)
    save_results(args.out, results)
    print(f"compiled training: {results['training_speedup']}x the eager epochs")


if __name__ == "__main__":
    main()
