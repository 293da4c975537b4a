"""``securedd experts``: train the expert trajectories that trajectory matching (MTT) needs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from securedd.cli.common import add_data_flags, build_config, echo, examples
from securedd.data import load_dataset
from securedd.distill.experts import human_bytes, plan_experts, train_experts
from securedd.store import check_output


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "experts", help="train expert trajectories for trajectory matching (mtt)",
        description="Train N networks on the real training data with plain SGD and store every epoch's "
                    "parameters as sharded safetensors files plus a manifest. Resumable: finished shards "
                    "are checked and skipped. Disk use: parameters x 4 bytes x (epochs + 1) x experts.",
        epilog=examples(
            "securedd experts --dataset digits --model convnet_tiny --experts 2 --epochs 2 --out experts/digits",
            "securedd distill --dataset digits --model convnet_tiny --method mtt --ipc 1 method.experts=experts/digits "
            "method.expert_epochs=1 method.max_start_epoch=1 method.syn_steps=10 method.iterations=20",
            "securedd experts --dataset cifar10 --zca --experts 100 --epochs 50 --data-root ~/data --out experts/cifar10_zca",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="TOML config file (its dataset, model, seed and device are used)")
    p.add_argument("--dataset", help="dataset name, imagefolder:PATH or npz:PATH (securedd list datasets)")
    p.add_argument("--model", help="the network to train (securedd list models; default: convnet)")
    p.add_argument("--seed", type=int, help="seed of the experts' initialisation and shuffling")
    p.add_argument("--experts", type=int, default=100, help="number of experts (default: 100)")
    p.add_argument("--epochs", type=int, default=50, help="SGD epochs per expert (default: 50)")
    p.add_argument("--lr", type=float, default=0.01, help="the experts' SGD learning rate (default: 0.01, no momentum)")
    p.add_argument("--batch-size", type=int, default=256, help="training batch size (default: 256)")
    p.add_argument("--dsa", action=argparse.BooleanOptionalAction, default=True, help="differentiable augmentation (default: on)")
    p.add_argument("--zca", action="store_true", help="ZCA-whiten the data (then distil with method.zca=true)")
    p.add_argument("--out", "-o", metavar="DIR", help="folder of shards and manifest (default: experts/<data>_<model>[_zca])")
    add_data_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    name = Path(cfg.data.name.split(":", 1)[-1]).name or "data"
    out = Path(args.out) if args.out else Path("experts") / f"{name}_{cfg.model}{'_zca' if args.zca else ''}"
    check_output(out, what="--out", folder=True)
    real = load_dataset(cfg.data.name, "train", root=cfg.data.root, download=cfg.data.download,
                        skip_bad_images=cfg.data.skip_bad_images)
    plan = plan_experts(cfg, out, num_experts=args.experts, epochs=args.epochs, spec=real.spec)
    if not args.quiet:
        echo(f"experts: {args.experts} x {cfg.model} on {cfg.data.name}, {args.epochs} epochs of SGD (lr {args.lr}, "
             f"batch {args.batch_size}), augmentation {real.spec.dsa_strategy if args.dsa else 'off'}, "
             f"ZCA {'on' if args.zca else 'off'}, seed {cfg.seed}, device {cfg.device}")
    echo(f"disk estimate: {plan.num_params:,} parameters x 4 B x {args.epochs + 1} snapshots x {args.experts} experts "
         f"= {human_bytes(plan.total_bytes)}; {len(plan.done)} finished, {human_bytes(plan.remaining_bytes)} to write, "
         f"{human_bytes(plan.free_bytes)} free")
    plan.check_disk()
    start = time.perf_counter()
    manifest = train_experts(cfg, out, num_experts=args.experts, epochs=args.epochs, lr=args.lr,
                             batch_size=args.batch_size, dsa=args.dsa, zca=args.zca, real=real, progress=not args.quiet)
    trained = args.experts - len(plan.done)
    echo(f"wrote {out} ({len(manifest['shards'])} experts, {trained} trained now, {len(plan.done)} skipped) "
         f"in {time.perf_counter() - start:.1f} s")
    echo(f"next: securedd distill --dataset {cfg.data.name} --model {cfg.model} --method mtt method.experts={out}"
         f"{' method.zca=true' if args.zca else ''}")
    return 0
