"""Memory of the trajectory-matching gradient: full unroll (MTT) vs constant memory (TESLA).

For each mode and each number of student steps (10, 20, 40 by default), a fresh
subprocess builds a ConvNet-3 on random MNIST-shaped data (10 classes x IPC synthetic
images, whole set per step, DSA on), computes the matching loss and its gradient with
respect to the images and the learnable lr once, and reports:

- ``saved_bytes_peak``: the peak bytes autograd held for backward (SavedTensorMeter;
  deterministic, any device);
- ``snapshot_bytes``: the parameter vectors TESLA keeps for its reverse pass (N x P x 4);
- ``peak_rss_growth_bytes`` (CPU): the growth of the process's peak resident memory during
  the gradient computation (resource.getrusage), or ``cuda_peak_bytes`` on CUDA
  (torch.cuda.max_memory_allocated);
- ``seconds``: wall time of that one gradient computation.

The gradients of both modes agree (tests/distill/test_trajectory_matching.py checks it in
float64). Results go to benchmarks/results/tesla_memory.json and a table is printed.

Usage:
    python benchmarks/tesla_memory.py [--steps 10,20,40] [--ipc 1] [--width 128] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from securedd.data.augment import DSA
from securedd.distill.unroll import SavedTensorMeter, Student, plan_steps, tesla_loss, unrolled_loss
from securedd.models import create_model
from securedd.models.functional import flat_params
from securedd.store import atomic_write_bytes

MODES = {"plain": unrolled_loss, "tesla": tesla_loss}


def measure(mode: str, n_steps: int, ipc: int, width: int, device: str) -> dict[str, float | int | str]:
    """One gradient computation of ``mode`` with ``n_steps`` student steps; its memory and time."""
    gen = torch.Generator().manual_seed(0)
    net = create_model("convnet", (1, 28, 28), 10, width=width, generator=gen).to(device)
    student = Student(net, DSA("color_crop_cutout_scale_rotate"))
    images = torch.randn(10 * ipc, 1, 28, 28, generator=gen).to(device).requires_grad_(True)
    labels = torch.arange(10).repeat_interleave(ipc).to(device)
    start = flat_params(net)
    target = start + 0.01 * torch.randn(start.shape, generator=gen).to(device)
    lr = torch.tensor([0.01], device=device, requires_grad=True)
    steps = plan_steps(len(labels), n_steps, len(labels), torch.Generator(device=device).manual_seed(1),
                       student.dsa, (28, 28))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    with SavedTensorMeter() as meter:
        loss = MODES[mode](student, start, target, images, labels, lr, steps)
        loss.backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out: dict[str, float | int | str] = {
        "mode": mode, "syn_steps": n_steps, "ipc": ipc, "width": width, "device": device,
        "num_params": int(start.numel()), "loss": float(loss.detach()),
        "saved_bytes_peak": meter.peak,
        "snapshot_bytes": int(start.numel()) * 4 * n_steps if mode == "tesla" else 0,
        "seconds": round(seconds, 3),
    }
    if device.startswith("cuda"):
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated() - base_cuda
    else:
        out["peak_rss_growth_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss
    return out


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="10,20,40")
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads in each subprocess")
    parser.add_argument("--out", default="benchmarks/results/tesla_memory.json")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.ipc, args.width, args.device)))
        return
    rows = []
    for n_steps in [int(s) for s in args.steps.split(",")]:
        for mode in MODES:
            cmd = [sys.executable, __file__, "--child", mode, str(n_steps), "--ipc", str(args.ipc), "--width",
                   str(args.width), "--device", args.device, "--threads", str(args.threads)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    peak_key = "cuda_peak_bytes" if args.device.startswith("cuda") else "peak_rss_growth_bytes"
    lines = [f"| syn_steps | mode | autograd saved (MB) | TESLA snapshots (MB) | {peak_key} (MB) | seconds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['syn_steps']} | {r['mode']} | {_mb(r['saved_bytes_peak'])} | {_mb(r['snapshot_bytes'])} | "
                     f"{_mb(r[peak_key])} | {r['seconds']} |")
    print("\n".join(lines))
    payload = {"benchmark": "tesla_memory", "model": f"convnet width {args.width}, 1x28x28 input, 10 classes",
               "ipc": args.ipc, "threads": args.threads, "device": args.device, "torch": torch.__version__,
               "machine": platform.machine(), "results": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=2) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
