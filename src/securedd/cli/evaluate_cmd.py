"""``securedd evaluate``: train fresh models on an artifact and test them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from securedd.api import evaluate
from securedd.cli.common import add_data_flags, echo, examples
from securedd.cli.trust import add_signature_flags, load_checked
from securedd.precision import PRECISIONS
from securedd.store import atomic_write_bytes, check_output


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evaluate", help="train fresh models on an artifact, test on real data",
        description="The standard protocol: SGD, 1000 epochs with DSA (300 without), final test accuracy "
                    "as mean ± std over fresh models, per-class accuracy and fairness.",
        epilog=examples(
            "securedd evaluate digits.safetensors --runs 3",
            "securedd evaluate x.safetensors --models convnet,resnet18 --runs 5 --data-root ~/data",
            "securedd evaluate digits.safetensors --no-dsa --epochs 300 --json eval.json",
            "securedd evaluate cifar10.safetensors --precision bf16 --data-root ~/data",
            "securedd evaluate x.safetensors --public sender.pub.pem --require-signature",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifact", help="the .safetensors artifact")
    p.add_argument("--models", default="convnet", help="comma-separated architectures (default: convnet)")
    p.add_argument("--runs", type=int, default=3, help="fresh models per architecture (default: 3)")
    p.add_argument("--epochs", type=int, help="training epochs (default: 1000 with DSA, 300 without)")
    p.add_argument("--dsa", action=argparse.BooleanOptionalAction, default=True, help="differentiable augmentation (default: on)")
    p.add_argument("--cutmix", type=float, metavar="P",
                   help="CutMix probability per batch (default: what the artifact asks for; IDC 0.5, others 0)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="train and score through torch.compile (default: when the work pays back the one-off "
                        "compilation, e.g. CIFAR-10 IPC 10 at 1000 epochs)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (the protocol, default) or bf16 mixed precision: about 1.7x as fast on CPUs with "
                        "bfloat16 instructions (AVX512-BF16, AMX), slower on others")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation models")
    p.add_argument("--json", metavar="FILE", help="also write the full report as JSON")
    add_signature_flags(p)
    add_data_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_output(args.json, what="--json")
    checked = load_checked(args)
    art = checked.artifact
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    echo(f"{args.artifact}: {art.method}, {art.spec.name}, {art.images.shape[0]} images "
         f"({art.ipc_accounting()['summary']}), sha256 {art.sha256[:16]}..., {checked.status}")
    report = evaluate(art, models=models, runs=args.runs, epochs=args.epochs, dsa=args.dsa, cutmix=args.cutmix,
                      compile=args.compile, precision=args.precision, data_root=args.data_root,
                      device=args.device or "cpu", seed=args.seed,
                      progress=not args.quiet, skip_bad_images=args.skip_bad_images)
    p = report.protocol
    cutmix = f", CutMix p={p['cutmix_prob']}" if p.get("cutmix_prob") else ""
    echo(f"protocol: {p['epochs']} epochs, lr {p['lr']}, batch {p['batch_size']}, "
         f"augmentation {p['dsa_strategy'] or 'off'}{cutmix}{', compiled' if p.get('compile') else ''}"
         f"{', ' + p['precision'] if p.get('precision', 'fp32') != 'fp32' else ''}")
    echo(report.to_markdown())
    echo("")
    echo(report.per_class_markdown())
    if args.json:
        payload = {"artifact": str(args.artifact), "sha256": art.sha256, **report.to_dict()}
        atomic_write_bytes(Path(args.json), json.dumps(payload, indent=2).encode())
        echo(f"wrote {args.json}")
    return 0
