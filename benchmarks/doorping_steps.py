"""Where Doorping's trigger optimisation stops moving the top neuron, on MNIST.

A Doorping worker re-optimises its 2x2 trigger, projected into the valid pixel range, to
drive the top penultimate neuron of its round's network to 10x its activation (Adam lr
0.08, up to 1000 steps). For ``--networks`` freshly initialised ConvNet-3s (the network a
worker draws at the start of a round) this runs the optimisation from the same random
trigger with a growing step cap and no plateau rule, and with the plateau rule
(``patience``, the default 50), and records the top neuron's mean activation on the
worker's stamped images relative to its start, the steps taken and the seconds.

The question it answers: how many of the 1000 steps change anything. If the activation
ratio at the plateau stop equals the one after 1000 steps, the plateau rule saves the
difference in time and changes nothing.

Usage:
    python benchmarks/doorping_steps.py --data-root $SECUREDD_DATA --networks 3

Results go to ``benchmarks/results/doorping_steps.json``, keyed by the settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import load_results, save_results  # noqa: E402

RESULTS = HERE / "results" / "doorping_steps.json"


def main() -> None:
    import torch

    from securedd.config import RunConfig, apply_overrides
    from securedd.federated.apps import client_shard
    from securedd.federated.doorping import Doorping, optimise_trigger, pixel_bounds, poisoned_indices, stamp, top_neuron, trigger_mask
    from securedd.models import create_model
    from securedd.rng import make_generator

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    p.add_argument("--clients", type=int, default=3, help="the worker's shard is 1/clients of MNIST's train split")
    p.add_argument("--networks", type=int, default=3)
    p.add_argument("--caps", type=int, nargs="+", default=[50, 200, 1000], help="step caps without the plateau rule")
    p.add_argument("--batch", type=int, default=32, help="stamped images per step")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    if not args.data_root:
        p.error("--data-root (or SECUREDD_DATA) is required")
    torch.set_num_threads(args.threads)
    key = f"mnist|clients{args.clients}|batch{args.batch}|{args.networks}nets|caps{','.join(map(str, args.caps))}"
    if key in load_results(args.results):
        print(f"{key}: done")
        return
    cfg = apply_overrides(RunConfig(), ["data.name='mnist'", f"data.root='{args.data_root}'", "method.name='dc'"])
    shard = client_shard(cfg, args.clients, "iid", 0)
    spec = shard.spec
    base = shard.images[poisoned_indices(shard, Doorping(), 0, 0)]
    mask, bounds = trigger_mask(spec), pixel_bounds(spec)
    start = torch.randn(spec.shape, generator=make_generator(0, "doorping", "trigger", 0))
    rows = []
    for k in range(args.networks):
        net = create_model("convnet", spec.shape, spec.num_classes, generator=make_generator(0, "doorping-steps", k))
        for param in net.parameters():
            param.requires_grad_(False)
        unit = top_neuron(net)
        with torch.no_grad():
            before = float(net.embed(stamp(base, start, mask))[:, unit].mean())
        arms = [(f"cap {cap}, no plateau rule", Doorping(batch=args.batch, steps=cap, patience=0)) for cap in args.caps]
        arms.append(("cap 1000, patience 50", Doorping(batch=args.batch)))
        for name, settings in arms:
            t = time.perf_counter()
            trigger, steps = optimise_trigger(net, start, mask, base, settings, bounds=bounds,
                                              generator=make_generator(0, "doorping-steps", "batches", k))
            seconds = time.perf_counter() - t
            with torch.no_grad():
                after = float(net.embed(stamp(base, trigger, mask))[:, unit].mean())
            rows.append({"network": k, "arm": name, "steps": steps, "seconds": round(seconds, 2),
                         "ratio": round(after / before, 5)})
            print(f"network {k}, {name}: {steps} steps, {seconds:.1f} s, activation x{after / before:.5f}", flush=True)
    results = load_results(args.results)
    results[key] = {"rows": rows, "threads": args.threads, "poisoned_images": len(base)}
    save_results(args.results, results)


if __name__ == "__main__":
    main()
