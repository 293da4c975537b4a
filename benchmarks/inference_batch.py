"""What the batch size does to inference and to DeepFool on a CPU.

- **Scoring:** ``score_model`` (forward passes without gradients) of untrained
  ConvNet-3, AlexNet, VGG-16 and ResNet-18 on 2048 MNIST test images, in batches of 2048
  (the old default) down to 16. ``inference_batch`` picks 64 on a CPU.
- **DeepFool:** ``deepfool_accuracy`` of a ConvNet-3 trained briefly on 500 MNIST
  training images, on 200 test images, in batches of 500 (the old default) and 10 (the
  new CPU default). DeepFool steps a batch until all its images are adversarial, so one
  hard image keeps the whole batch busy. The accuracies must come out equal.

Each figure is the median of ``--repeats`` runs. Run it with nothing else on the machine.

Usage:
    python benchmarks/inference_batch.py --data-root $SECUREDD_DATA [--repeats 3]

Results go to ``benchmarks/results/inference_batch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from securedd.attacks.robustness import DEFAULT_EPSILONS, deepfool_accuracy
from securedd.data import load_dataset
from securedd.models import create_model
from securedd.training import TrainSettings, score_model, train_model

HERE = Path(__file__).resolve().parent


def _median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 2), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=HERE / "results" / "inference_batch.json")
    args = p.parse_args()
    train = load_dataset("mnist", "train", root=args.data_root)
    test = load_dataset("mnist", "test", root=args.data_root)
    sample = test.subset(torch.arange(2048))
    results: dict = {"threads": torch.get_num_threads(), "scoring_seconds_2048_images": {}, "deepfool": {}}
    for name in ("convnet", "alexnet", "vgg16", "resnet18"):
        model = create_model(name, sample.spec.shape, 10, generator=torch.Generator().manual_seed(0))
        row = {}
        for batch in (2048, 256, 64, 16):
            row[batch], _ = _median_seconds(lambda m=model, b=batch: score_model(m, sample, batch_size=b), args.repeats)
        results["scoring_seconds_2048_images"][name] = row
        print(name, row, flush=True)
    gen = torch.Generator().manual_seed(0)
    model = create_model("convnet", train.spec.shape, 10, generator=gen)
    few = train.subset(torch.randperm(len(train), generator=gen)[:500])
    train_model(model, few.images, few.labels, TrainSettings(epochs=20, batch_size=100), gen)
    attacked = test.subset(torch.arange(200))
    for batch in (500, 10):
        seconds, acc = _median_seconds(lambda b=batch: deepfool_accuracy(model, attacked, DEFAULT_EPSILONS["linf"],
                                                                          batch=b), args.repeats)
        results["deepfool"][batch] = {"seconds": seconds, "accuracy": [round(float(a), 2) for a in acc]}
        print("deepfool batch", batch, results["deepfool"][batch], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
