"""Does the memory layout of a compiled ConvNet-3 embedding's input matter? (the DM IPC 1 slowdown)

DM's augmentation returns real pieces with standard strides or with channels-last strides,
and ``torch.compile`` compiles one graph per layout. This times the compiled no-grad
embedding of a piece of 16 images in each layout, on MNIST (1x28x28) and CIFAR-10
(3x32x32) shapes: the median over ``--repeats`` rounds of 50 calls, after 3 warm-up calls.

Usage:
    python benchmarks/embed_layout.py
Results: benchmarks/results/embed_layout.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from results_io import cpu_model, save_results

RESULTS = Path(__file__).resolve().parent / "results" / "embed_layout.json"
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def _embed(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.embed(x)  # type: ignore[operator]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    from securedd.models import create_model

    compiled = torch.compile(_embed, dynamic=False)
    out: dict = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                             "load_average_at_start": os.getloadavg(), "torch": torch.__version__}}
    for name, shape in SHAPES.items():
        net = create_model("convnet", shape, 10, generator=torch.Generator().manual_seed(0))
        for p in net.parameters():
            p.requires_grad_(False)
        x = torch.randn(16, *shape, generator=torch.Generator().manual_seed(1))
        for layout, piece in (("standard", x), ("channels_last", x.contiguous(memory_format=torch.channels_last)
                                                if shape[0] > 1 else x.as_strided(x.shape, (x[0].numel(), 1,
                                                                                            shape[2], 1)))):
            with torch.no_grad():
                for _ in range(3):
                    compiled(net, piece)
                rounds = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    for _ in range(50):
                        compiled(net, piece)
                    rounds.append((time.perf_counter() - start) / 50)
            ms = statistics.median(rounds) * 1e3
            out[f"{name}|{layout}"] = {"strides": list(piece.stride()), "ms_per_piece": round(ms, 3)}
            print(f"{name:<8} {layout:<14} strides {piece.stride()}  {ms:6.2f} ms per piece of 16", flush=True)
    save_results(args.results, out)


if __name__ == "__main__":
    main()
