"""``securedd attack``: what an eavesdropper gets from a SecDD artifact (``key-search``) and what an
honest-but-curious SFDD server gets from a worker's update (``leakage``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from securedd.artifacts import atomic_write_bytes, load_artifact
from securedd.cli.common import add_data_flags, add_run_flags, echo, examples, print_config, resolve_config
from securedd.cli.federate_cmd import add_defence_flags, defence_from_args
from securedd.data import load_dataset
from securedd.secure.attack import DEFAULT_BUDGET, DEFAULT_SEEDS, candidate_keys, fitting_models, key_search, resemblance
from securedd.secure.keys import load_key
from securedd.visualize import save_neighbour_grid, save_pairs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attack", help="attacks on transmitted artifacts", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Attacks an adversary can run on an intercepted artifact.",
                       epilog=examples("securedd attack key-search secret.safetensors --budget 60"))
    kinds = p.add_subparsers(dest="attack", metavar="ATTACK", required=True)
    k = kinds.add_parser(
        "key-search", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="try keys (architecture x seed) and pick one by the set's own loss",
        description="Replays the artifact on candidate networks (every fitting architecture in the zoo, random "
                    "seeds) and picks the one the set fits best (lowest loss on the distilled set itself), as an "
                    "adversary without the key must. Reports the pick's test accuracy, the best candidate's, the "
                    "key holder's (with --key, for the comparison only) and how much the images resemble their "
                    "nearest real training images (pixel distance, SSIM, and a PNG of the pairs).",
        epilog=examples(
            "securedd attack key-search secret.safetensors --budget 60",
            "securedd attack key-search secret.safetensors --models lenet --seeds 20 --budget 20 --key target.key",
            "securedd attack key-search secret.safetensors --json attack.json --grid neighbours.png",
        ))
    k.add_argument("artifact")
    k.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help=f"keys to try (default: {DEFAULT_BUDGET})")
    k.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                   help=f"at most this many seeds per architecture and scheme (default: {DEFAULT_SEEDS})")
    k.add_argument("--models", help="comma-separated architectures to try (default: every one that fits)")
    k.add_argument("--schemes", default="xavier,default", help="initialisation schemes to try (default: %(default)s)")
    k.add_argument("--key", metavar="FILE", help="the real key, only to report the key holder's accuracy beside")
    k.add_argument("--search-seed", type=int, default=0, help="seed of the adversary's random choices")
    k.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    k.add_argument("--grid", metavar="PNG", help="write each image beside its nearest real training image")
    add_data_flags(k)
    k.set_defaults(run=run_key_search)
    _add_leakage(kinds)


def _add_leakage(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser(
        "leakage", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="an SFDD server reconstructs a worker's real batch from its update",
        description="The honest-but-curious server of federated distillation (SFDD): one worker runs a round of "
                    "DC on its shard from the server's set; the server, knowing the protocol, the batch size and "
                    "(unless --no-init) the worker's network initialisation, optimises a dummy batch with L-BFGS "
                    "until the same round on it reproduces the worker's returned set. Reports the paper's "
                    "standardised MSE (about 2: nothing learnt), PSNR and SSIM against the worker's real batch, "
                    "and writes a PNG of real vs reconstructed. The round has one matching step (IPC 1's "
                    "schedule); the network defaults to the attack-friendly ConvNet (sigmoid, no pooling).",
        epilog=examples(
            "securedd attack leakage --dataset digits --model mlp --iterations 50 --grid leak.png",
            "securedd attack leakage --dataset mnist --data-root ~/data --clients 5 --json leak.json --grid leak.png",
            "securedd attack leakage --dataset mnist --data-root ~/data --defence ldpo-rld --json leak_ldpo.json",
            "securedd attack leakage --dataset mnist --data-root ~/data --batch-real 4 --learn-labels --no-init",
        ))
    add_run_flags(p)
    p.add_argument("--clients", type=int, default=5, help="clients the training data is split between (default: 5)")
    p.add_argument("--client", type=int, default=0, help="the worker attacked (default: 0)")
    p.add_argument("--round", type=int, default=0, help="the round (seeds the worker's network and batch)")
    p.add_argument("--batch-real", type=int, default=1, help="real images per class in the worker's batch (default: 1)")
    p.add_argument("--iterations", type=int, default=300, help="L-BFGS steps at most (default: 300)")
    p.add_argument("--learn-labels", action="store_true", help="also reconstruct the labels (report their recovery)")
    p.add_argument("--no-init", action="store_true", help="the server does not know the worker's initialisation")
    add_defence_flags(p)
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    p.add_argument("--grid", metavar="PNG", help="write the real batch above its reconstruction")
    p.set_defaults(run=run_leakage)


def run_leakage(args: argparse.Namespace) -> int:
    from securedd.config import apply_overrides
    from securedd.distill.synthetic import class_labels
    from securedd.federated.apps import FederationSettings, client_shard, initial_images
    from securedd.federated.leakage import LeakageSettings, leakage_attack, observe_round

    args.method = "dc"
    args.model = args.model or "convnet_attack"
    args.ipc = args.ipc or 1
    cfg, preset = resolve_config(args)
    cfg = apply_overrides(cfg, [f"method.batch_real={args.batch_real}", "method.compile=false"])
    print_config(cfg, args.quiet, preset)
    settings = FederationSettings(cfg, clients=args.clients, progress=False)
    shard = client_shard(cfg, args.clients, "iid", args.client)
    sent = initial_images(settings)
    labels = class_labels(shard.spec.num_classes, cfg.method.ipc, sent.device)
    defence = defence_from_args(args)
    observed = observe_round(cfg, shard, sent, labels, client=args.client, round_=args.round, defence=defence)
    result = leakage_attack(observed, shard.spec, LeakageSettings(iterations=args.iterations,
                                                                  know_init=not args.no_init,
                                                                  learn_labels=args.learn_labels, seed=cfg.seed),
                            progress=not args.quiet)
    found = result.to_dict()
    labels_line = f", labels recovered {found['label_accuracy']:.0%}" if result.label_accuracy is not None else ""
    echo(f"reconstructed {found['images']} images of client {args.client} ({args.defence}): standardised MSE "
         f"{found['standardised_mse']:.3f} (2 = nothing learnt), PSNR {found['psnr']:.2f} dB, SSIM "
         f"{found['ssim']:.3f}{labels_line}; {len(result.losses)} L-BFGS steps")
    if args.grid:
        spec = shard.spec
        real, recon = spec.denormalize(result.real), spec.denormalize(result.reconstruction)
        mse = ((real.clamp(0, 1) - recon.clamp(0, 1)) ** 2).flatten(1).mean(1)
        echo(f"wrote {save_pairs(real, recon, [f'mse {v:.3f}' for v in mse.tolist()], args.grid, rows=('real', 'recon.'))}")
    if args.json:
        payload = {"dataset": cfg.data.name, "model": cfg.model, "clients": args.clients, "client": args.client,
                   "round": args.round, "batch_real": args.batch_real, "defence": defence.to_dict() if defence is not None else None,
                   "know_init": not args.no_init, **found, "losses": result.losses}
        atomic_write_bytes(Path(args.json), json.dumps(payload, indent=2).encode())
        echo(f"wrote {args.json}")
    return 0


def run_key_search(args: argparse.Namespace) -> int:
    art = load_artifact(args.artifact)
    spec = art.spec
    test = load_dataset(spec.name, "test", root=args.data_root, spec=spec)
    models = [m.strip() for m in args.models.split(",")] if args.models else fitting_models(art)
    schemes = tuple(s.strip() for s in args.schemes.split(",") if s.strip())
    keys = candidate_keys(models, args.seeds, args.budget, args.search_seed, schemes)
    report = key_search(art, test, keys, true_key=load_key(args.key) if args.key else None, progress=not args.quiet)
    pick, best = report.pick, report.best
    echo(f"tried {len(report.candidates)} keys over {len(models)} architectures x {len(schemes)} schemes")
    echo("| architecture | keys tried | mean test acc. (%) | max test acc. (%) |\n|---|---|---|---|")
    for name, row in report.by_model().items():
        echo(f"| {name} | {row['tried']} | {row['mean']:.2f} | {row['max']:.2f} |")
    echo(f"adversary's pick (lowest loss on the set): {pick.model}, test accuracy {pick.accuracy:.2f}%")
    echo(f"best candidate (unknowable to the adversary): {best.model}, {best.accuracy:.2f}%")
    if report.key_accuracy is not None:
        echo(f"key holder: {report.key_accuracy:.2f}%")
    train = load_dataset(spec.name, "train", root=args.data_root, spec=spec)
    look = resemblance(art, train)
    echo(f"nearest real training image: mean pixel distance {look['mean_distance']:.2f}, mean SSIM {look['mean_ssim']:.3f}")
    if args.grid:
        real = spec.denormalize(train.images[look["nearest_index"]].float())
        echo(f"wrote {save_neighbour_grid(art, real, look['distance'], look['ssim'], args.grid)}")
    if args.json:
        payload = {"artifact": str(args.artifact), "sha256": art.sha256, **report.to_dict(), "resemblance": look}
        atomic_write_bytes(Path(args.json), json.dumps(payload, indent=2).encode())
        echo(f"wrote {args.json}")
    return 0
