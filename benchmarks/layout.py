"""Seconds per ConvNet-3 training step on 100 MNIST-sized images: default vs channels-last layout.

Usage: python benchmarks/layout.py [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from securedd.models import create_model


def step_seconds(channels_last: bool, steps: int) -> float:
    model = create_model("convnet", (1, 28, 28), 10, generator=torch.Generator().manual_seed(0))
    x, y = torch.randn(100, 1, 28, 28), torch.arange(100) % 10
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for i in range(steps + 3):  # 3 warm-up steps
        if i == 3:
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    for layout in (False, True):
        print(f"{'channels-last' if layout else 'default (NCHW)':>15}: {step_seconds(layout, args.steps):.3f} s/step")
