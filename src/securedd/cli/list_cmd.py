"""``securedd list methods|models|datasets``."""

from __future__ import annotations

import argparse

from securedd.cli.common import echo, examples
from securedd.data import DATASETS
from securedd.distill import METHODS
from securedd.models import MODELS

KINDS = {"methods": METHODS, "models": MODELS, "datasets": DATASETS}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="show what is registered", description="Show registered methods, models or datasets.",
                       epilog=examples("securedd list methods", "securedd list models", "securedd list datasets"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=sorted(KINDS), help="what to list")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    registry = KINDS[args.what]
    width = max(len(n) for n in registry.names())
    for name in registry.names():
        echo(f"{name:<{width}}  {registry.describe(name)}")
    if args.what == "datasets":
        echo(f"{'imagefolder:PATH':<{width}}  your images: PATH/<class>/*.png, or PATH/train and PATH/test")
        echo(f"{'npz:PATH':<{width}}  your arrays: x_train, y_train, x_test, y_test (+ class_names)")
    return 0
