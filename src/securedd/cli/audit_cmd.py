"""``securedd audit``: utility, privacy, robustness, memorisation and fairness of an artifact, as a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from securedd.attacks.robustness import DEFAULT_EPSILONS, NORMS
from securedd.audit.suite import DEFAULT_MODELS, STAGES, AuditConfig
from securedd.cli.common import add_data_flags, echo, examples
from securedd.errors import ConfigError
from securedd.store import check_output


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit", help="audit an artifact: accuracy, membership inference, robustness, memorisation, fairness",
        description="Trains fresh networks on the artifact and a full-data ConvNet-3 reference, then measures "
                    "accuracy across architectures, the loss-threshold membership attack (members: training "
                    "images; non-members: test images), accuracy under DeepFool (foolbox, the [audit] extra) over a sweep "
                    "of budgets, how close each distilled image is to a real one, and "
                    "per-class accuracy and its variance, with a t-SNE. Writes audit.json, audit.md (with its "
                    "PNGs) and a self-contained audit.html next to the artifact (or into --out-dir).",
        epilog=examples(
            "securedd audit digits.safetensors",
            "securedd audit mnist_dm_ipc10.safetensors --data-root ~/data --runs 3",
            "securedd audit digits.safetensors --stages privacy,memorisation --out-dir audit-digits",
            "securedd audit digits.safetensors --models convnet,mlp --runs 2 --epochs 300 --no-dsa",
            "securedd audit digits.safetensors --stages robustness --norm l2 --epsilons 0,0.5,1,2",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifact")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages (default: %(default)s)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="architectures for utility (default: %(default)s; those that do not fit are skipped)")
    p.add_argument("--runs", type=int, default=AuditConfig.runs, help="fresh models per architecture (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=AuditConfig.epochs,
                   help="epochs of every network trained on the set (default: %(default)s, so that an IPC 10 audit "
                        "fits half an hour on 2 cores; the evaluation protocol's is 1000 with DSA)")
    p.add_argument("--no-dsa", action="store_true", help="train the models without DSA augmentation")
    p.add_argument("--reference-epochs", type=int, default=AuditConfig.reference_epochs,
                   help="epochs of the full-data reference (default: %(default)s)")
    p.add_argument("--reference-min-steps", type=int, default=AuditConfig.reference_min_steps,
                   help="at least this many SGD steps for the reference on small datasets (default: %(default)s)")
    p.add_argument("--mia-samples", type=int, default=2000, help="members and non-members each (default: 2000)")
    p.add_argument("--robustness-samples", type=int, default=AuditConfig.robustness_samples,
                   help="test images DeepFool attacks (default: %(default)s)")
    p.add_argument("--norm", choices=NORMS, default=AuditConfig.norm,
                   help="DeepFool's norm; budgets are on pixels in [0, 1] (default: %(default)s)")
    p.add_argument("--epsilons", help="comma-separated DeepFool budgets (default: the norm's sweep, "
                   + "; ".join(f"{n}: {','.join(f'{e:g}' for e in DEFAULT_EPSILONS[n])}" for n in NORMS) + ")")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", metavar="DIR", help="where the report goes (default: beside the artifact)")
    add_data_flags(p)
    p.set_defaults(run=run)


def _budgets(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--epsilons takes comma-separated numbers, e.g. 0,0.05,0.1; got '{text}'") from None


def run(args: argparse.Namespace) -> int:
    from securedd.audit.report import write_report
    from securedd.audit.suite import run_audit

    folder = Path(args.out_dir) if args.out_dir else Path(args.artifact).resolve().parent
    check_output(folder, what="--out-dir" if args.out_dir else "the report folder", folder=True)
    for name in ("audit.json", "audit.md", "audit.html"):
        check_output(folder / name, what="the report")
    cfg = AuditConfig(stages=tuple(s.strip() for s in args.stages.split(",") if s.strip()),
                      models=tuple(m.strip() for m in args.models.split(",") if m.strip()), runs=args.runs,
                      epochs=args.epochs, dsa=not args.no_dsa, reference_epochs=args.reference_epochs,
                      reference_min_steps=args.reference_min_steps,
                      mia_samples=args.mia_samples, robustness_samples=args.robustness_samples, norm=args.norm,
                      epsilons=_budgets(args.epsilons), seed=args.seed)
    audit = run_audit(args.artifact, cfg, data_root=args.data_root, progress=not args.quiet,
                      skip_bad_images=args.skip_bad_images)
    files = write_report(audit, folder)
    echo("| aspect | metric | distilled | full-data reference |\n|---|---|---|---|")
    for row in audit.summary:
        echo(f"| {row['aspect']} | {row['metric']} | {row.get('distilled', '–')} | {row.get('reference', '–')} |")
    echo("wrote " + ", ".join(str(p) for p in files.values()))
    return 0
