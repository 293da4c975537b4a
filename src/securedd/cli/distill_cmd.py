"""``securedd distill``: distil a dataset into an artifact."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from securedd.api import distill
from securedd.cli.common import add_run_flags, default_out, echo, examples, print_config, resolve_config
from securedd.config import RunConfig
from securedd.errors import MismatchError
from securedd.secure.keys import load_key
from securedd.store import check_output
from securedd.visualize import save_grid


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "distill", help="distil a dataset into a .safetensors artifact",
        description="Distil a dataset into a few images per class and write a verified artifact. Without "
                    "--config, the method's preset for the dataset and IPC (securedd list presets) is the starting "
                    "point; flags and KEY=VALUE overrides win over it. Ctrl-C stops at the next iteration, saves a "
                    "checkpoint next to --out and prints the command that resumes it (a second Ctrl-C aborts).",
        epilog=examples(
            "securedd distill --dataset digits --method herding --ipc 10 --out digits.safetensors",
            "securedd distill --dataset mnist --method dsa --ipc 10 --data-root ~/data --out dsa.safetensors",
            "securedd distill --dataset mnist --method dsa --ipc 10 --data-root ~/data --out dsa.safetensors --resume",
            "securedd distill --dataset cifar10 --method dm --ipc 10 --data-root ~/data method.iterations=2000",
            "securedd distill --dataset mnist --method dsa --ipc 10 --data-root ~/data --no-preset method.iterations=200",
            "securedd distill --dataset mnist --ipc 10 --data-root ~/data --fast --out mnist_fast.safetensors",
            "securedd distill --dataset digits --method dc --ipc 1 method.iterations=50 method.checkpoint_every=10 "
            "--out dc.safetensors",
            "securedd distill --config configs/digits_herding_ipc10.toml seed=1 method.embed_steps=100",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_flags(p)
    p.add_argument("--fast", action="store_true",
                   help="start from the fast preset profile: the method and budget measured best within 30 minutes "
                        "of distillation on a 2-core CPU (securedd list presets --fast); --method picks among its "
                        "entries")
    p.add_argument("--out", "-o", metavar="FILE", help="artifact to write (default: out/<data>_<method>_ipc<N>_seed<S>.safetensors)")
    p.add_argument("--grid", action="store_true", help="also write a PNG grid next to the artifact")
    p.add_argument("--half", action="store_true",
                   help="store the images (and soft labels) as float16: half the bytes to send")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint next to --out (written every method.checkpoint_every "
                        "iterations and on Ctrl-C); the artifact is the same as an uninterrupted run's")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg, preset = resolve_config(args)
    check_key_model(args, cfg)
    print_config(cfg, args.quiet, preset)
    out = Path(args.out) if args.out else default_out(cfg)
    check_output(out, what="--out")
    check_output(Path(str(out) + ".ckpt"), what="the checkpoint")
    if args.grid:
        check_output(out.with_suffix(".png"), what="--grid")
    start = time.perf_counter()
    art = distill(cfg, out=out, progress=not args.quiet, resume=args.resume,
                  payload="float16" if args.half else "float32")
    echo(f"wrote {out} ({art.images.shape[0]} images, sha256 {art.sha256[:16]}...) in {time.perf_counter() - start:.1f} s")
    if args.grid:
        echo(f"wrote {save_grid(art, out.with_suffix('.png'))}")
    return 0


def check_key_model(args: argparse.Namespace, cfg: RunConfig) -> None:
    """Refuse ``--model`` (or ``model=``) naming another architecture than the existing SecDD key's.

    The key file fixes the network a SecDD set trains; a model given beside it would
    otherwise be ignored without a word.

    Raises:
        MismatchError: naming the key file, its architecture and the model asked for.
    """
    key_path = cfg.method.params.get("key") if cfg.method.name == "secdd" else None
    explicit = args.model is not None or any(o.partition("=")[0].strip() == "model" for o in args.overrides or [])
    if not explicit or not key_path or not Path(str(key_path)).is_file():
        return
    key = load_key(str(key_path))
    if key.model != cfg.model:
        raise MismatchError(f"--model {cfg.model} conflicts with the SecDD key {key_path}, which is for a "
                            f"{key.model}: the key's architecture is the network the set trains. Drop --model, "
                            f"give --model {key.model}, or name a new key file (method.key=NEW) to make a key "
                            f"for {cfg.model}")
