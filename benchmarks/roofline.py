"""A roofline for this machine: its sustained fp32 rate, and what a ConvNet-3 training step achieves.

Peak: the median rate of a large square ``torch.mm`` (2 N^3 FLOPs), on every core and on one
thread. Step: one ConvNet-3 (width 128, instance norm, ReLU, average pooling) training step --
forward, backward and an SGD update -- on MNIST (1x28x28) and CIFAR-10 (3x32x32) shapes, at
the batch sizes the methods use: real batches of 256, synthetic batches of 10 and 100, each
whole and in pieces of 16 rows whose gradients are summed (the methods' ``chunk``).

FLOPs are counted analytically from the layers' shapes, not sampled from a profiler:

- a convolution: ``2 * (C_in / groups) * k_h * k_w * C_out * H_out * W_out`` per image
  forward; a linear layer ``2 * in * out``;
- backward: the same again for the weight gradient, and again for the input gradient of
  every layer except the first (its input, the images, needs none in a training step);
- normalisation, activations, pooling and the update are elementwise and not counted, so
  the figure is a slight under-estimate of the work done.

Each timing is the median of ``--repeats`` runs after two warm-up runs. Results go to
``benchmarks/results/roofline.json`` with the CPU model and the load average at the start.

Usage:
    python benchmarks/roofline.py
    python benchmarks/roofline.py --threads 1 --repeats 5
    python benchmarks/roofline.py --threads 2 --precision bf16   # bfloat16 peak and autocast steps
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from results_io import cpu_model, load_results, save_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "roofline.json"
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
BATCHES = (256, 100, 10)
CHUNK = 16


def _median_seconds(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_gflops(threads: int, n: int, repeats: int, precision: str = "fp32") -> float:
    """Sustained GFLOP/s of an n x n matrix product on ``threads`` threads, in fp32 or bf16."""
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / _median_seconds(lambda: torch.mm(a, b), repeats) / 1e9


def step_flops(net: torch.nn.Module, shape: tuple[int, int, int], batch: int) -> int:
    """Forward + backward FLOPs of one training step, counted from the layers' shapes."""
    layers: list[tuple[int, bool]] = []  # (forward FLOPs, is the first layer)

    def count(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            per = 2 * (module.in_channels // module.groups) * kh * kw * output.shape[1] * output.shape[2] * output.shape[3]
        else:
            per = 2 * module.in_features * module.out_features  # type: ignore[operator]
        layers.append((per * output.shape[0], not layers))

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(batch, *shape))
    for hook in hooks:
        hook.remove()
    return sum(f * (2 if first else 3) for f, first in layers)


def step_gflops(shape: tuple[int, int, int], batch: int, chunk: int, threads: int, repeats: int,
                precision: str = "fp32") -> dict:
    from securedd.models import create_model
    from securedd.precision import autocast

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    net = create_model("convnet", shape, 10, generator=gen)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, *shape, generator=gen), torch.randint(0, 10, (batch,), generator=gen)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        for piece in torch.split(torch.arange(batch), chunk or batch):
            with autocast(precision, "cpu"):
                logits = net(x[piece])
            loss_fn(logits.float(), y[piece]).backward()
        opt.step()

    seconds = _median_seconds(step, repeats)
    flops = step_flops(net, shape, batch)
    return {"seconds": round(seconds, 5), "gflop": round(flops / 1e9, 3), "gflops": round(flops / seconds / 1e9, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1, 1])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--matrix", type=int, default=4096, help="side of the square matrices of the peak")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: the peak of a bfloat16 product, and the steps under bfloat16 autocast")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    results = load_results(args.results)
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_at_start": os.getloadavg(),
               "torch": torch.__version__}
    for threads in args.threads:
        key = f"threads={threads}" + ("" if args.precision == "fp32" else f"|{args.precision}")
        peak = peak_gflops(threads, args.matrix, args.repeats, args.precision)
        entry: dict = {"machine": machine, "peak_gflops": round(peak, 2), "steps": {}}
        for name, shape in SHAPES.items():
            for batch in BATCHES:
                for chunk in (0, CHUNK) if batch > CHUNK else (0,):
                    step = step_gflops(shape, batch, chunk, threads, args.repeats, args.precision)
                    step["share_of_peak"] = round(step["gflops"] / entry["peak_gflops"], 3)
                    entry["steps"][f"{name}|batch={batch}|{'chunk=' + str(chunk) if chunk else 'whole'}"] = step
                    print(f"{key:<10} {name:<8} batch {batch:>3} {'chunk ' + str(chunk) if chunk else 'whole':<9}"
                          f" {step['seconds'] * 1e3:8.2f} ms  {step['gflops']:7.2f} GFLOP/s"
                          f"  {100 * step['share_of_peak']:5.1f}% of peak", flush=True)
        results[key] = entry
        save_results(args.results, results)
        print(f"{key}: peak {entry['peak_gflops']:.2f} GFLOP/s (torch.mm {args.matrix}^2)", flush=True)


if __name__ == "__main__":
    main()
