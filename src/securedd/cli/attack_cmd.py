"""``securedd attack key-search``: what an eavesdropper without the key gets from a SecDD artifact."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from securedd.artifacts import atomic_write_bytes, load_artifact
from securedd.cli.common import add_data_flags, echo, examples
from securedd.data import load_dataset
from securedd.secure.attack import DEFAULT_BUDGET, DEFAULT_SEEDS, candidate_keys, fitting_models, key_search, resemblance
from securedd.secure.keys import load_key
from securedd.visualize import save_neighbour_grid


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
