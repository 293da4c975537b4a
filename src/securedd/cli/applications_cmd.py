"""``securedd adapt`` and ``securedd poison``: DD's applications, distilled and scored in one command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from securedd.api import distill
from securedd.artifacts import Artifact, load_artifact
from securedd.cli.common import add_data_flags, echo, examples
from securedd.config import RunConfig, apply_overrides
from securedd.data import load_dataset
from securedd.data.spec import RealData
from securedd.evaluation.applications import ApplicationReport, adaptation_report, poisoning_report
from securedd.store import atomic_write_bytes, check_output
from securedd.training.pool import load_pool


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser(
        "adapt", help="distil images that adapt source-trained networks to a target dataset (DD)",
        description="Fast domain adaptation (DD): distils --ipc images per class of the target dataset, applied "
                    "in --steps GD steps x --epochs, that adapt networks trained on a source dataset (a pool made "
                    "with `securedd pool --as TARGET`). Scores them on the pool's held-out networks beside no "
                    "adaptation, random real target images (learned and best fixed rates) and fine-tuning on the "
                    "whole target training split; writes the table as JSON next to --out. An existing --out is "
                    "scored, not distilled again.",
        epilog=examples(
            "securedd pool --dataset digits --as mnist --model lenet --count 6 --epochs 10 --out pools/digits-as-mnist",
            "securedd adapt --pool pools/digits-as-mnist --target mnist --data-root ~/data --iterations 300 "
            "--out adapt.safetensors",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("--target", required=True, help="the dataset to adapt to")
    a.add_argument("--ipc", type=int, default=10, help="distilled images per class (default: 10)")
    a.add_argument("--steps", type=int, default=10, help="GD steps per epoch (default: 10)")
    a.add_argument("--epochs", type=int, default=3, help="epochs over the steps (default: 3)")
    a.add_argument("--finetune-epochs", type=int, default=1,
                   help="epochs of the full-target-data baseline (default: 1; 0 leaves it out)")
    _common(a)
    a.set_defaults(run=run_adapt)

    p = sub.add_parser(
        "poison", help="distil images whose one GD step makes trained networks take class K for T (DD)",
        description="Fast data poisoning (DD): distils --ipc images per class that, in one GD step, make "
                    "well-trained networks (a pool from `securedd pool`) classify class K as class T while keeping "
                    "the other classes. Scores them on the pool's held-out networks with the DD paper's three "
                    "metrics, beside random real images with incorrect labels (learned and best fixed rates); "
                    "writes the table as JSON next to --out. An existing --out is scored, not distilled again.",
        epilog=examples(
            "securedd pool --dataset mnist --model lenet --count 8 --epochs 1 --data-root ~/data --out pools/mnist",
            "securedd poison --pool pools/mnist --attack 0:1 --data-root ~/data --iterations 300 "
            "--out poison.safetensors",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--attack", required=True, metavar="K:T", help="attacked class K, taken for target class T")
    p.add_argument("--dataset", help="the dataset (default: the one the pool was trained on)")
    p.add_argument("--ipc", type=int, default=1, help="distilled images per class (default: 1)")
    _common(p)
    p.set_defaults(run=run_poison)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", required=True, metavar="DIR", help="the trained networks (securedd pool)")
    p.add_argument("--held-out", type=int, default=2, help="pool networks kept for scoring (default: 2)")
    p.add_argument("--iterations", type=int, default=1000, help="distillation iterations (default: 1000)")
    p.add_argument("--method", default="dd", choices=("dd", "sldd"), help="dd (default) or sldd (soft labels)")
    p.add_argument("--seed", type=int, default=0, help="run seed (same seed, same artifact)")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="the artifact (its report goes beside it)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted distillation from its checkpoint")
    add_data_flags(p)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more method settings, e.g. method.lr=0.05")


def _config(args: argparse.Namespace, dataset: str, model: str, ipc: int, steps: int, epochs: int,
            extra: list[str]) -> RunConfig:
    settings = [f"data.name='{dataset}'", f"model='{model}'", f"method.name='{args.method}'", f"method.ipc={ipc}",
                f"method.steps={steps}", f"method.epochs={epochs}", f"method.iterations={args.iterations}",
                "method.init='pool'", f"method.pool='{args.pool}'", f"method.held_out={args.held_out}",
                f"seed={args.seed}", *extra]
    if args.data_root:
        settings.append(f"data.root='{args.data_root}'")
    if args.device:
        settings.append(f"device='{args.device}'")
    return apply_overrides(RunConfig(), [*settings, *args.overrides])


def _distil_or_load(cfg: RunConfig, args: argparse.Namespace, train: RealData) -> Artifact:
    out = Path(args.out)
    if out.exists() and not args.resume:
        echo(f"{out} exists: scoring it (delete it to distil again)")
        return load_artifact(out)
    return distill(cfg, out=out, real=train, progress=not args.quiet, resume=args.resume)


def _finish(report: ApplicationReport, out: Path) -> int:
    path = out.with_suffix(f".{report.task}.json")
    atomic_write_bytes(path, (json.dumps(report.to_dict(), indent=1) + "\n").encode())
    echo(report.table())
    echo(f"wrote {path}")
    return 0


def _check_outputs(args: argparse.Namespace, task: str) -> None:
    out = Path(args.out)
    check_output(out, what="--out")
    check_output(Path(str(out) + ".ckpt"), what="the checkpoint")
    check_output(out.with_suffix(f".{task}.json"), what="the report")


def run_adapt(args: argparse.Namespace) -> int:
    _check_outputs(args, "adaptation")
    pool = load_pool(args.pool)
    cfg = _config(args, args.target, pool.model, args.ipc, args.steps, args.epochs, [])
    train = load_dataset(args.target, "train", root=args.data_root, download=args.download,
                         skip_bad_images=args.skip_bad_images)
    art = _distil_or_load(cfg, args, train)
    test = load_dataset(args.target, "test", root=args.data_root, spec=train.spec, skip_bad_images=args.skip_bad_images)
    return _finish(adaptation_report(art, test, train, finetune_epochs=args.finetune_epochs, seed=args.seed,
                                     progress=not args.quiet), Path(args.out))


def run_poison(args: argparse.Namespace) -> int:
    _check_outputs(args, "poisoning")
    pool = load_pool(args.pool)
    dataset = args.dataset or str(pool.manifest["dataset"])
    cfg = _config(args, dataset, pool.model, args.ipc, 1, 1, [f"method.relabel='{args.attack}'"])
    train = load_dataset(dataset, "train", root=args.data_root, download=args.download,
                         skip_bad_images=args.skip_bad_images)
    art = _distil_or_load(cfg, args, train)
    test = load_dataset(dataset, "test", root=args.data_root, spec=train.spec, skip_bad_images=args.skip_bad_images)
    return _finish(poisoning_report(art, test, train, seed=args.seed, progress=not args.quiet), Path(args.out))
