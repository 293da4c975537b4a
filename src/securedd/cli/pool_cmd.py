"""``securedd pool``: train a pool of networks for DD's pool initialisation."""

from __future__ import annotations

import argparse

from securedd.cli.common import add_data_flags, echo, examples
from securedd.data import dataset_spec, load_dataset
from securedd.store import check_output
from securedd.training.pool import load_pool, train_pool


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "pool", help="train a pool of networks (DD's pretrained initialisation)",
        description="Trains COUNT networks on a dataset (SGD, lr 0.01, momentum 0.9) into a folder with a "
                    "manifest; networks already there are kept, so an interrupted run continues. With --as, the "
                    "images are converted to another dataset's shape first, so the networks take that dataset's "
                    "images (domain adaptation).",
        epilog=examples(
            "securedd pool --dataset digits --model convnet_tiny --count 4 --epochs 5 --out pools/digits",
            "securedd pool --dataset mnist --as usps --model lenet --count 10 --epochs 5 --out pools/mnist-as-usps",
            "securedd distill --dataset usps --method dd --ipc 10 model=lenet method.init=pool "
            "method.pool=pools/mnist-as-usps",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="the dataset the networks learn")
    p.add_argument("--as", dest="as_dataset", metavar="DATASET", help="convert the images to this dataset's shape")
    p.add_argument("--model", required=True, help="architecture (securedd list models)")
    p.add_argument("--count", type=int, default=10, help="networks (default: 10)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs per network (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the networks' initialisations and batches")
    p.add_argument("--out", required=True, metavar="DIR", help="the pool folder")
    add_data_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_output(args.out, what="--out", folder=True)
    train = load_dataset(args.dataset, "train", root=args.data_root, download=args.download,
                         skip_bad_images=args.skip_bad_images)
    target = (dataset_spec(args.as_dataset, root=args.data_root, skip_bad_images=args.skip_bad_images)
              if args.as_dataset else None)
    folder = train_pool(args.model, train, args.out, count=args.count, epochs=args.epochs, seed=args.seed,
                        target=target, progress=not args.quiet)
    pool = load_pool(folder)
    echo(f"{folder}: {len(pool)} {pool.model} networks trained on {args.dataset} for {pool.shape} images")
    return 0
