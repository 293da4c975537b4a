"""``securedd list methods|models|datasets|attacks|defences|presets``."""

from __future__ import annotations

import argparse
from typing import Any

from securedd.attacks import ATTACKS
from securedd.cli.common import echo, examples
from securedd.data import DATASETS
from securedd.defences import DEFENCES
from securedd.distill import METHODS
from securedd.models import MODELS
from securedd.presets import list_presets
from securedd.registry import Registry

# Each registry listed by name, with the first line of its entries' docstrings.
KINDS: dict[str, Registry[Any]] = {
    "methods": METHODS,
    "models": MODELS,
    "datasets": DATASETS,
    "attacks": ATTACKS,
    "defences": DEFENCES,
}
CHOICES = (*KINDS, "presets")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("list", help="show what is registered",
                       description="Show registered methods, models, datasets, attacks or defences, or the shipped "
                                   "method presets.",
                       epilog=examples("securedd list methods", "securedd list models", "securedd list datasets",
                                       "securedd list attacks", "securedd list defences", "securedd list presets",
                                       "securedd list presets --method dsa", "securedd list presets --fast"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=sorted(CHOICES), help="what to list")
    p.add_argument("--method", help="with presets: only this method's")
    p.add_argument("--fast", action="store_true", help="with presets: the fast profile's entries (distill --fast)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "presets":
        return _presets(args.method, "fast" if args.fast else "published")
    registry = KINDS[args.what]
    width = max(len(n) for n in registry.names())
    for name in registry.names():
        stage = f"[{registry.get(name).stage}] " if args.what == "defences" else ""
        echo(f"{name:<{width}}  {stage}{registry.describe(name)}")
    if args.what == "datasets":
        echo(f"{'imagefolder:PATH':<{width}}  your images: PATH/<class>/*.png, or PATH/train and PATH/test")
        echo(f"{'npz:PATH':<{width}}  your arrays: x_train, y_train, x_test, y_test (+ class_names)")
    return 0


def _presets(method: str | None, profile: str) -> int:
    rows = [(p.method, p.dataset, f"ipc{p.ipc}", " ".join(f"{k}={v}" for k, v in p.values["method"].items()))
            for p in list_presets(method, profile=profile)]
    head = ("method", "dataset", "ipc", "method settings")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    for row in [head, *rows]:
        echo("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False)) + "  " + row[3])
    if profile == "fast":
        echo("\nsecuredd distill --dataset D --ipc N --fast starts from the matching entry (nearest IPC if none); "
             "flags and key=value overrides win over it.")
    else:
        echo("\nsecuredd distill --dataset D --method M --ipc N picks the matching preset (nearest IPC if none); "
             "flags and key=value overrides win over it, --no-preset turns it off; --fast picks the fast profile.")
    return 0
