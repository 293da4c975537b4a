"""What ``method.chunk`` buys: one network gradient on a batch, whole or in pieces.

Times the mean cross-entropy gradient of ConvNet-3 (28x28 grey input, as MNIST) on a
batch of 256 and of 100 images (DC's real batch and an IPC 10 synthetic set), computed in
one call or summed over pieces of 8 to 64 images, eagerly and through the compiled
``torch.func.grad`` DC uses. Each figure is the median of ``--repeats`` calls after two
warm-up calls, the settings interleaved so that drifts of the machine hit all alike. Run
it with nothing else on the machine.

Usage:
    python benchmarks/chunk.py [--repeats 7] [--out benchmarks/results/chunk.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from securedd.distill.gradient_matching import _CompiledGrad, _eager_grad
from securedd.models import create_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", type=Path, default=HERE / "results" / "chunk.json")
    args = p.parse_args()
    gen = torch.Generator().manual_seed(0)
    net = create_model("convnet", (1, 28, 28), 10, generator=gen)
    compiled = {c: _CompiledGrad(create_model("convnet", (1, 28, 28), 10, generator=gen), c) for c in (0, 8, 16, 32, 64)}
    params = list(net.parameters())
    rows = []
    for n in (256, 100):
        x, y = torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)
        calls = {}
        for c in compiled:
            calls[("eager", c)] = lambda c=c, x=x, y=y: _eager_grad(net, params, x, y, c)
            calls[("compiled", c)] = lambda c=c, x=x, y=y: compiled[c](net, x, y)
        for fn in calls.values():
            fn(), fn()
        times: dict[tuple[str, int], list[float]] = {k: [] for k in calls}
        for _ in range(args.repeats):
            for key, fn in calls.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        whole = statistics.median(times[("eager", 0)])
        for (mode, c), ts in times.items():
            med = statistics.median(ts)
            rows.append({"batch": n, "mode": mode, "chunk": c, "seconds": round(med, 4),
                         "ms_per_image": round(1000 * med / n, 3), "vs_eager_whole": round(whole / med, 2)})
    out = {"benchmark": "chunk", "model": "convnet (ConvNet-3, width 128), 1x28x28", "threads": torch.get_num_threads(),
           "torch": torch.__version__, "repeats": args.repeats, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print("| batch | mode | chunk | s per call | ms per image | speed-up vs eager whole |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['mode']} | {r['chunk'] or 'whole'} | {r['seconds']:.3f} | {r['ms_per_image']:.2f} "
              f"| {r['vs_eager_whole']:.2f}x |")


if __name__ == "__main__":
    main()
