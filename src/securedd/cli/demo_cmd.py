"""``securedd demo``: the main job in one command, offline on ``digits`` by default."""

from __future__ import annotations

import argparse

from securedd.cli.common import add_data_flags, echo, examples
from securedd.demo import best_method, run_demo
from securedd.store import check_output


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="distil, evaluate against random real images, write a report",
        description="Distil a dataset with the best available method and with random real images at the same "
                    "size and evaluate both with fresh ConvNets; on digits, also distil across 3 clients on Flower "
                    "(SFDD) beside the same method run centrally, and send a signed SecDD set that only its key's "
                    "network learns from. Every set is checked against random real images of its size: a set below "
                    "that floor is named and the command exits 1. Writes artifacts, PNG grids, demo.md and demo.json; "
                    "about 2 to 3 minutes on 2 CPU cores, the same tables for the same seed.",
        epilog=examples("securedd demo", "securedd demo --ipc 1 --runs 5",
                        "securedd demo --dataset mnist --data-root ~/data --out-dir mnist-demo"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", default="digits", help="dataset (default: digits, offline)")
    p.add_argument("--ipc", type=int, default=10, help="images per class (default: 10)")
    p.add_argument("--runs", type=int, default=3, help="fresh models per set (default: 3)")
    p.add_argument("--epochs", type=int, default=300, help="training epochs per model (default: 300)")
    p.add_argument("--dsa", action="store_true", help="train the evaluation models with DSA")
    p.add_argument("--seed", type=int, default=0, help="run seed")
    p.add_argument("--out-dir", default="demo-out", help="output folder (default: demo-out)")
    add_data_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_output(args.out_dir, what="--out-dir", folder=True)
    echo(f"demo: {args.dataset}, IPC {args.ipc}, best method '{best_method()}' vs 'random', {args.runs} models each")
    result = run_demo(dataset=args.dataset, ipc=args.ipc, runs=args.runs, epochs=args.epochs, dsa=args.dsa,
                      out_dir=args.out_dir, data_root=args.data_root, device=args.device or "cpu", seed=args.seed,
                      progress=not args.quiet, verbose=args.verbose, skip_bad_images=args.skip_bad_images)
    echo("")
    echo(result.to_markdown())
    echo(result.federated_markdown())
    echo(result.secure_markdown())
    echo(result.floors_markdown())
    echo(f"\nfinished in {result.seconds:.0f} s; wrote:")
    for path in result.files:
        echo(f"  {path}")
    for failure in result.failures:
        echo(f"WARNING: {failure}", err=True)
    if result.failures:
        return 1
    echo(f"all {len(result.floors)} sets are above random real images of their size")
    return 0
