"""The ``securedd`` command: parse, dispatch, turn library errors into clear messages."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import warnings

from securedd.cli import (
    applications_cmd,
    attack_cmd,
    audit_cmd,
    demo_cmd,
    distill_cmd,
    evaluate_cmd,
    experts_cmd,
    federate_cmd,
    list_cmd,
    pool_cmd,
    secure_cmd,
    show_cmd,
)
from securedd.cli.common import examples
from securedd.errors import Interrupted, SecureddError
from securedd.profiling import profiling
from securedd.rng import seed_globals
from securedd.store import describe_os_error
from securedd.version import __version__

SUBCOMMANDS = (demo_cmd, distill_cmd, evaluate_cmd, show_cmd, list_cmd, experts_cmd, secure_cmd, attack_cmd, pool_cmd,
               applications_cmd, federate_cmd, audit_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="securedd",
        description="Secure dataset distillation: condense an image dataset into a few synthetic images, "
                    "store them as a verified artifact, and evaluate them.",
        epilog=examples(
            "securedd demo",
            "securedd list methods",
            "securedd list presets",
            "securedd distill --dataset digits --method herding --ipc 10 --out digits.safetensors",
            "securedd evaluate digits.safetensors --runs 3",
            "securedd show digits.safetensors",
            "securedd experts --dataset digits --model convnet_tiny --experts 2 --epochs 2 --out experts/digits",
            "securedd distill --dataset mnist --method secdd --ipc 1 method.key=target.key --out secret.safetensors",
            "securedd keygen --out sender && securedd sign secret.safetensors --private sender.pem",
            "securedd train secret.safetensors --key target.key --public sender.pub.pem",
            "securedd list attacks",
            "securedd attack key-search secret.safetensors --budget 60",
            "securedd audit digits.safetensors --runs 2",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"securedd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


class _OwnLogs(logging.Filter):
    """securedd's own records from ``level`` up; other libraries' only from ERROR up."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "securedd" or record.name.startswith("securedd.")
        return record.levelno >= (self.level if own else logging.ERROR)


def configure_logging(*, quiet: bool = False, verbose: bool = False) -> None:
    """Log securedd's progress (warnings only with ``quiet``); dependencies only speak up with ``verbose``.

    Without ``verbose``, other libraries' log records below ERROR and their Python warnings
    are dropped: Flower's DEBUG lines and deprecation notes, foolbox's per-batch notes.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_OwnLogs(logging.WARNING if quiet else logging.INFO))
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module="securedd")
    handler._securedd = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_securedd", False)] + [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def resume_command(argv: list[str] | None) -> str:
    """The command line that continues an interrupted run: the same arguments plus ``--resume``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["securedd", *args])


def _run_profiled(args: argparse.Namespace) -> int:
    """Run the command; with ``--profile``, print where its time went to stderr when it ends
    (also when it fails or is interrupted)."""
    if not getattr(args, "profile", False):
        return int(args.run(args))
    try:
        with profiling() as prof:
            return int(args.run(args))
    finally:
        print(f"securedd {args.command}: where the time went\n{prof.table()}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input or a file-system error, 130 interrupted).

    securedd's errors and the operating system's (a full disk, permission denied, a folder
    where a file goes) are printed as one line, ``securedd CMD: error: ...``, never a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
    seed_globals(getattr(args, "seed", None) or 0)
    try:
        return _run_profiled(args)
    except Interrupted as exc:
        print(f"securedd {args.command}: {exc}; resume with: {resume_command(argv)}", file=sys.stderr)
        return 130
    except SecureddError as exc:
        print(f"securedd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permission denied, a full disk, a folder where a file goes...: one line, no traceback
        print(f"securedd {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"securedd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
