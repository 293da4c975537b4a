"""``securedd federate``: SFDD on Flower's simulation engine (extra ``[fl]``)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from securedd.cli.common import add_run_flags, default_out, echo, examples, print_config, resolve_config
from securedd.defences import DEFENCES, Defence, make_defence
from securedd.errors import ConfigError
from securedd.store import check_output

# the flags of add_defence_flags, by the defence setting they give
_DEFENCE_FLAGS = {"k": "k", "eps": "eps", "dispersion": "dispersion", "draw": "draw", "clamp": "clamp",
                  "scale": "scale", "clip": "clip", "noise_multiplier": "noise_multiplier"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "federate", help="distil across clients that keep their data (SFDD on Flower)",
        description="Federated dataset distillation (SFDD): the server owns the synthetic set; every round each "
                    "client runs one iteration of the matching method (dc, dsa or dm, with its preset) on its own "
                    "shard and sends back its updated set, and the server aggregates. Runs on Flower's simulation engine "
                    "(one process per concurrent client); install with pip install 'securedd[fl]'. The server "
                    "checkpoints every round next to --out; run the same command again to resume.",
        epilog=examples(
            "securedd federate --dataset digits --method dc --ipc 1 --clients 3 --rounds 5 model=convnet_tiny "
            "--out fed.safetensors",
            "securedd federate --dataset mnist --method dc --ipc 1 --clients 5 --rounds 100 --data-root ~/data "
            "--defence ldpo-rld --out sfdd.safetensors",
            "securedd federate --dataset digits --method dm --ipc 10 --clients 3 --rounds 20 model=convnet_tiny "
            "--defence localdp-gaussian --clip 1 --noise-multiplier 1 --out feddm.safetensors",
            "securedd federate --dataset mnist --method dc --ipc 1 --clients 5 --rounds 100 --data-root ~/data "
            "--defence localdp-gaussian --clip 1 --noise-multiplier 1 --accountant pld --out dp.safetensors",
            "securedd federate --dataset mnist --method dc --ipc 1 --clients 5 --rounds 100 --data-root ~/data "
            "--defence localdp-gaussian --target-epsilon 8 --out dp8.safetensors",
            "securedd federate --dataset mnist --method dc --ipc 10 --clients 10 --split dirichlet:0.5 "
            "--aggregator median --data-root ~/data --out skew.safetensors",
            "securedd federate --dataset digits --method dm --ipc 10 --clients 5 --rounds 20 model=convnet_tiny "
            "--split pathological:2 --aggregator fltrust --out trusted.safetensors",
            "securedd federate --dataset mnist --method dc --ipc 1 --clients 3 --rounds 100 --data-root ~/data "
            "--deploy-app sfdd-app --out /shared/sfdd.safetensors",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_flags(p)
    p.add_argument("--clients", type=int, default=5, help="data owners (default: 5)")
    p.add_argument("--rounds", type=int, default=100, help="federated rounds (default: 100)")
    p.add_argument("--split", default="iid",
                   help="iid (default), dirichlet:ALPHA (label skew) or pathological:K (about K classes a client)")
    p.add_argument("--aggregator", default="mean",
                   help="mean (the paper), fedavg, median, trimmed_mean or fltrust (replies weighed by their "
                        "agreement with the server's own update on a small clean root set)")
    p.add_argument("--trim", type=float, default=0.2, help="share trimmed at each end by trimmed_mean")
    p.add_argument("--trust-root", type=int, default=10,
                   help="fltrust: clean training images per class the server holds (default: 10)")
    p.add_argument("--server-momentum", type=float, default=0.0,
                   help="FedAvgM momentum of the server's step (default: 0, the paper's plain mean)")
    p.add_argument("--min-clients", type=int, default=None,
                   help="connected clients the server waits for before a round (default: all)")
    p.add_argument("--quorum", type=int, default=None,
                   help="usable replies a round needs to change the set; a round with fewer keeps it "
                        "(default: a majority of the clients)")
    p.add_argument("--patience", type=int, default=3,
                   help="rounds in a row without a quorum before the run stops, checkpoint kept (default: 3)")
    add_defence_flags(p)
    p.add_argument("--accountant", default="rdp", choices=("rdp", "pld"), help="privacy accountant (default: rdp)")
    p.add_argument("--delta", type=float, default=1e-5, help="delta of the reported epsilon")
    p.add_argument("--target-epsilon", type=float, default=None, metavar="EPS",
                   help="Gaussian LocalDP: the smallest noise multiplier whose --rounds spend at most EPS at "
                        "--delta with --accountant (instead of --noise-multiplier)")
    p.add_argument("--out", "-o", metavar="FILE", help="the artifact (default: out/...)")
    p.add_argument("--deploy-app", metavar="DIR",
                   help="instead of simulating, write the app folder for Flower's deployment engine (flwr run DIR)")
    p.set_defaults(run=run)


def add_defence_flags(p: argparse.ArgumentParser) -> None:
    """The client-side defence and its settings (``securedd federate``, ``securedd attack leakage``)."""
    client = [n for n in DEFENCES.names() if DEFENCES.get(n).stage == "client"]
    p.add_argument("--defence", default="none", choices=["none", *client],
                   help="the clients' defence (securedd list defences): none (default), " + ", ".join(client))
    p.add_argument("--k", type=int, default=9, help="LDPO-RLD: other classes (default: 9)")
    p.add_argument("--eps", type=float, default=9 / 11, help="LDPO-RLD: mass off the true class (default: 9/11)")
    p.add_argument("--dispersion", default="linear", help="LDPO-RLD: linear or uniform")
    p.add_argument("--draw", default="class", choices=("class", "image"),
                   help="LDPO-RLD: one distribution per class and matching step, shared by its real and synthetic "
                        "images (class, the paper's), or a fresh one per image (image)")
    p.add_argument("--clamp", type=float, default=1.0, help="Laplace LocalDP: per-coordinate clamp")
    p.add_argument("--scale", type=float, default=0.1, help="Laplace LocalDP: noise scale")
    p.add_argument("--clip", type=float, default=1.0, help="Gaussian LocalDP: L2 clip of the update")
    p.add_argument("--noise-multiplier", type=float, default=None,
                   help="Gaussian LocalDP: noise multiplier (default: 1, or what --target-epsilon needs)")


def defence_from_args(args: argparse.Namespace) -> Defence[Any] | None:
    """The client-stage defence the flags of :func:`add_defence_flags` describe (``None`` for none)."""
    if args.defence == "none":
        return None
    fields = {f.name for f in dataclasses.fields(DEFENCES.get(args.defence).Params)}
    return make_defence(args.defence, **{name: getattr(args, flag) for name, flag in _DEFENCE_FLAGS.items()
                                         if name in fields and getattr(args, flag) is not None})


def calibrate_noise(args: argparse.Namespace) -> None:
    """Set ``args.noise_multiplier`` from ``--target-epsilon`` (the ledger's inverse), if one is given."""
    if args.target_epsilon is None:
        return
    if args.defence != "localdp-gaussian":
        raise ConfigError(f"--target-epsilon sets the noise of Gaussian LocalDP, the one defence with a formal "
                          f"epsilon; add --defence localdp-gaussian (got --defence {args.defence})")
    if args.noise_multiplier is not None:
        raise ConfigError("give --target-epsilon or --noise-multiplier, not both")
    from securedd.defences.accounting import noise_for_epsilon

    args.noise_multiplier = noise_for_epsilon(args.target_epsilon, args.rounds, delta=args.delta,
                                              accountant=args.accountant)
    echo(f"noise multiplier {args.noise_multiplier:.4f}: epsilon at most {args.target_epsilon:g} at delta "
         f"{args.delta:g} over {args.rounds} rounds ({args.accountant})")


def run(args: argparse.Namespace) -> int:
    try:
        from securedd.federated.apps import run_federation
        from securedd.federated.settings import FederationSettings
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(f"federated runs need the [fl] extra: pip install 'securedd[fl]' ({exc})") from None
    if args.method is None:
        args.method = "dc"
    cfg, preset = resolve_config(args)
    print_config(cfg, args.quiet, preset, rounds=True)
    out = Path(args.out) if args.out else default_out(cfg).with_name(f"sfdd_{default_out(cfg).name}")
    if args.deploy_app:
        check_output(args.deploy_app, what="--deploy-app", folder=True)
    else:
        check_output(out, what="--out")
        check_output(out.with_suffix(".server.pt"), what="the server checkpoint")
    calibrate_noise(args)
    defence = defence_from_args(args)
    settings = FederationSettings(cfg, clients=args.clients, rounds=args.rounds, split=args.split,
                                  aggregator=args.aggregator, trim=args.trim, trust_root=args.trust_root,
                                  server_momentum=args.server_momentum,
                                  min_clients=args.min_clients or args.clients, quorum=args.quorum,
                                  patience=args.patience, defence=defence,
                                  accountant=args.accountant, delta=args.delta, out=str(out), progress=not args.quiet)
    if args.deploy_app:
        from securedd.federated.deploy import write_app

        folder = write_app(args.deploy_app, settings)
        echo(f"wrote {folder / 'pyproject.toml'}; start a SuperLink and {args.clients} SuperNodes "
             f"(--node-config partition-id=0..{args.clients - 1}), then: flwr run {folder} CONNECTION --stream")
        return 0
    start = time.perf_counter()
    art = run_federation(settings, verbose=args.verbose)
    ledger = art.metadata.get("privacy", {})
    spent = f", epsilon {ledger['epsilon']:.2f} at delta {ledger['delta']:g}" if "epsilon" in ledger else ""
    echo(f"wrote {out} ({art.images.shape[0]} images, {args.clients} clients x {args.rounds} rounds, "
         f"privacy: {ledger.get('mechanism', 'none')}{spent}) in {time.perf_counter() - start:.1f} s")
    return 0
