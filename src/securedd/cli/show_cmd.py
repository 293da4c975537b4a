"""``securedd show``: a PNG grid of an artifact's images, and its metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from securedd.cli.common import echo, examples
from securedd.cli.trust import add_signature_flags, load_checked
from securedd.store import check_output
from securedd.visualize import save_grid


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "show", help="write a PNG grid of an artifact (verifies it first)",
        description="Check an artifact's integrity (and, with --public, its signature), print its metadata and "
                    "write a labelled PNG grid, one row per class.",
        epilog=examples("securedd show digits.safetensors", "securedd show x.safetensors --out grid.png --per-class 5",
                        "securedd show secret.safetensors --public sender.pub.pem"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifact", help="the .safetensors artifact")
    p.add_argument("--out", "-o", metavar="PNG", help="where to write the grid (default: next to the artifact)")
    p.add_argument("--per-class", type=int, default=10, help="images per row (default: 10)")
    add_signature_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = check_output(Path(args.out) if args.out else Path(args.artifact).with_suffix(".png"), what="the grid")
    checked = load_checked(args, warn=False)
    art = checked.artifact
    meta = art.metadata
    spec = art.spec
    echo(f"artifact  {args.artifact} ({checked.status}; sha256 {art.sha256})")
    echo(f"method    {art.method}, {art.ipc_accounting()['summary']}, seed {meta['seed']}, {art.images.shape[0]} images, "
         f"{meta['label_kind']} labels{', learned lr' if art.lrs is not None else ''}")
    echo(f"dataset   {spec.name} {spec.channels}x{spec.height}x{spec.width}, {spec.num_classes} classes, "
         f"mean {spec.mean}, std {spec.std}")
    echo(f"privacy   {meta.get('privacy') or 'none recorded'}")
    echo(f"versions  {meta['versions']}")
    echo(f"wrote {save_grid(art, out, per_class=args.per_class)}")
    return 0
