"""Membership inference against models trained on distilled MNIST sets (the study's protocol).

Two experiments, each resumable (a finished cell is not repeated):

``study`` (the DD performance/privacy/robustness/fairness study, section 4.3, on MNIST):
for every method, size of the originals (images per class), initialisation and number of
classes, the members are ``origin`` real training images per class of the first
``classes`` classes; the non-members as many other training images of those classes. A
set of ``--ipc`` images per class is distilled from the members alone, ``--models`` fresh
ConvNet-3 targets are trained on it with the evaluation protocol (DSA) for
``--target-epochs`` epochs (300 by default, to fit a CPU; the protocol's is 1000), and
the loss-threshold attack scores every member and non-member on each target. Reported:
ROC AUC and TPR at 0.1% / 1% FPR, mean ± std over the targets. The reference point is a
ConvNet-3 trained on the originals themselves (``--reference-steps`` SGD steps, no
augmentation), attacked the same way. With ``--shadows S > 0`` LiRA (online and offline)
runs too: S shadow pipelines, each distilling from a random half of members and
non-members and training one model, exactly as the target's. LiRA is reported with one
query per example and, with ``--query-shift P``, with five (the image and four copies
moved P pixels), each with a variance shared by all examples and (8+ shadows) one per
example.

``overfit``: LiRA against a deliberately over-fit network (``--overfit-model``, LeNet by
default) trained on real images: a pool of ``--pool`` MNIST training images (balanced
over classes), the target trained on a random half for ``--overfit-epochs`` epochs without augmentation, ``--shadows`` shadow
models on balanced halves of the pool; the threshold attack, online and offline LiRA on
the target, all 1:1 members to non-members.

Study (CIFAR-10, Table 1, ConvNet, 10 distilled images per class, real init): AUC at 40 /
80 / 200 / 400 originals per class, DSA 76.46 / 61.89 / 55.03 / 52.52, DM 77.73 / 63.23 /
55.59 / 52.89, IDC 98.07 / 71.59 / 59.73 / 56.34. LiRA paper (CIFAR-10, 16 shadows):
online AUC 0.668, TPR at 0.1% FPR 0.017; loss threshold 0.592 / 0.0009.

Usage:
    python benchmarks/mia.py study --data-root $SECUREDD_DATA --methods dm,random,herding --origins 40,80,200,400
    python benchmarks/mia.py study ... --methods dc --iterations 100 --inits real,noise --classes 2,5,10
    python benchmarks/mia.py overfit --data-root $SECUREDD_DATA --pool 2000 --shadows 16

Results go to ``benchmarks/results/mia.json`` (``--results`` to change); ``--plot`` draws
``docs/images/mia_auc_vs_origin.png`` and ``docs/images/mia_overfit_roc.png`` from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import load_results, save_results  # noqa: E402

RESULTS = HERE / "results" / "mia.json"
IMAGES = HERE.parent / "docs" / "images"
COSTLY = {"dc": 100, "dsa": 100, "idc": 100, "mtt": 200, "dm": 200}  # default iterations per method
CORESETS = ("random", "herding", "kcenter")  # select real images: no iterations, no init


def _iterations(method: str, asked: int) -> int:
    return 0 if method in CORESETS else (asked or COSTLY.get(method, 1000))


def _restrict(data, classes: int):
    """The images of the first ``classes`` classes, as a ``classes``-class dataset."""
    import torch

    from securedd.data.spec import RealData

    keep = torch.nonzero(data.labels < classes).flatten()
    spec = dataclasses.replace(data.spec, num_classes=classes, class_names=data.spec.class_names[:classes])
    return RealData(data.images[keep], data.labels[keep], spec)


def _split(train, origin: int, seed: int):
    """``origin`` members and ``origin`` non-members per class, disjoint, drawn with ``seed``."""
    import torch

    from securedd.rng import make_generator

    gen = make_generator(seed, "mia", "split", origin)
    members, others = [], []
    for c in range(train.spec.num_classes):
        idx = torch.nonzero(train.labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        members.append(idx[:origin])
        others.append(idx[origin : 2 * origin])
    return train.subset(torch.cat(members)), train.subset(torch.cat(others))


def _distil(method: str, init: str, members, ipc: int, iterations: int, seed: int):
    from securedd.api import distill
    from securedd.config import RunConfig, apply_overrides

    overrides = [f"method.name={method}", f"method.ipc={ipc}", "data.name=mnist", f"seed={seed}"]
    if method not in CORESETS:
        overrides += [f"method.iterations={iterations}", f"method.params.init={init}"]
    return distill(apply_overrides(RunConfig(), overrides), real=members, progress=False)


def _train(images, labels, spec, seed: int, *, steps: int | None = None, epochs: int | None = None,
           model: str = "convnet", tag: str = "target"):
    """A fresh network: the evaluation protocol (DSA; ``epochs``) on a set, or ``steps`` plain SGD steps."""
    from securedd.config import EvalConfig
    from securedd.models import create_model
    from securedd.rng import make_generator
    from securedd.training import TrainSettings, eval_settings, train_model

    gen = make_generator(seed, "mia", tag)
    net = create_model(model, spec.shape, spec.num_classes, generator=gen)
    if steps is None:
        settings = eval_settings(EvalConfig(epochs=epochs), spec.dsa_strategy)
    else:
        batches = -(-len(labels) // 256)
        settings = TrainSettings(epochs=max(1, -(-steps // batches)), batch_size=256)
    return train_model(net, images, labels, settings, gen)


def _attack(scores_in, scores_out) -> dict:
    from securedd.attacks.membership import MembershipResult

    scores = np.r_[scores_in, scores_out]
    members = np.r_[np.ones(len(scores_in), bool), np.zeros(len(scores_out), bool)]
    return MembershipResult("", scores, members).to_dict()


def _mean_std(rows: list[dict], key: str) -> list[float]:
    values = [r[key] for r in rows]
    return [round(float(np.mean(values)), 4), round(float(np.std(values)), 4)]


def study_cell(args, method: str, origin: int, init: str, classes: int) -> dict:
    """Distil from ``origin`` members per class, attack ``--models`` targets (and LiRA)."""
    import torch

    from securedd.attacks.membership import LiraShadows, loss_scores, query_confidence, run_lira
    from securedd.data import load_dataset
    from securedd.rng import make_generator

    train = _restrict(load_dataset("mnist", "train", root=args.data_root), classes)
    members, others = _split(train, origin, args.seed)
    iterations = _iterations(method, args.iterations)
    start = time.perf_counter()
    art = _distil(method, init, members, args.ipc, iterations, args.seed)
    distil_s = time.perf_counter() - start
    images, labels = art.images.float(), art.labels
    rows, phis = [], []
    for m in range(args.models):
        target = _train(images, labels, members.spec, args.seed + m, epochs=args.target_epochs)
        rows.append(_attack(loss_scores(target, members).numpy(), loss_scores(target, others).numpy()))
        phis.append(torch.cat([query_confidence(target, members, args.query_shift),
                               query_confidence(target, others, args.query_shift)], 1))  # (V, 2N)
    out = {"method": method, "origin": origin, "init": init, "classes": classes, "iterations": iterations,
           "ipc": args.ipc, "models": args.models, "distil_s": round(distil_s, 1),
           "threshold": {"auc": _mean_std(rows, "auc"), "tpr@0.1%FPR": _mean_std(rows, "tpr@0.1%FPR"),
                         "tpr@1%FPR": _mean_std(rows, "tpr@1%FPR"), "per_target": [r["auc"] for r in rows]}}
    reference = _train(members.images, members.labels, members.spec, args.seed, steps=args.reference_steps,
                       tag="originals")
    out["originals_threshold"] = _attack(loss_scores(reference, members).numpy(), loss_scores(reference, others).numpy())
    if args.shadows:
        pool = type(members)(torch.cat([members.images, others.images]), torch.cat([members.labels, others.labels]),
                             members.spec)

        def pipeline(half, s):
            shadow = _distil(method, init, half, args.ipc, iterations, args.seed + 1000 + s)
            return _train(shadow.images.float(), shadow.labels, half.spec, args.seed + 1000 + s,
                          epochs=args.target_epochs, tag="shadow")

        shadows = run_lira(pipeline, pool, args.shadows, make_generator(args.seed, "mia", "lira"),
                           shift=args.query_shift)
        plain = LiraShadows(shadows.phi[:, :1], shadows.inside)
        variants = {"": (plain, slice(0, 1))} | ({f"_shift{args.query_shift}": (shadows, slice(None))}
                                                 if args.query_shift else {})  # one query, and all five
        variances = (("", False), ("_pervar", True)) if args.shadows >= 8 else (("", False),)  # per example: 8+
        for (suffix, (fits, queries)), mode, (variance, per_example) in itertools.product(
                variants.items(), ("online", "offline"), variances):
            per = [_attack(*np.split(fits.scores(phi[queries], online=mode == "online",
                                                 global_variance=not per_example), [len(members)])) for phi in phis]
            out[f"lira_{mode}{suffix}{variance}"] = {"auc": _mean_std(per, "auc"),
                                                      "tpr@0.1%FPR": _mean_std(per, "tpr@0.1%FPR"),
                                                      "tpr@1%FPR": _mean_std(per, "tpr@1%FPR")}
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def overfit_cell(args) -> dict:
    """LiRA vs the threshold attack on an over-fit network trained on half of a real pool."""
    import torch

    from securedd.attacks.membership import MembershipResult, logit_confidence, loss_scores, run_lira
    from securedd.data import load_dataset
    from securedd.rng import make_generator

    start = time.perf_counter()
    train = load_dataset("mnist", "train", root=args.data_root)
    per_class = args.pool // train.spec.num_classes
    pool, _ = _split(train, per_class, args.seed)
    gen = make_generator(args.seed, "mia", "overfit-target")
    inside = torch.zeros(len(pool), dtype=torch.bool)
    inside[torch.randperm(len(pool), generator=gen)[: len(pool) // 2]] = True
    steps = args.overfit_epochs * -(-(len(pool) // 2) // 256)

    def pipeline(half, s):
        return _train(half.images, half.labels, half.spec, args.seed + s, steps=steps, model=args.overfit_model,
                      tag="overfit")

    target = pipeline(pool.subset(torch.nonzero(inside).flatten()), -1)
    shadows = run_lira(pipeline, pool, args.shadows, make_generator(args.seed, "mia", "overfit-lira"))
    truth = inside.numpy()
    phi = logit_confidence(target, pool)
    attacks = {"threshold": MembershipResult("loss threshold", loss_scores(target, pool).numpy(), truth),
               "lira_online": MembershipResult("LiRA online", shadows.scores(phi, online=True), truth),
               "lira_offline": MembershipResult("LiRA offline", shadows.scores(phi, online=False), truth)}
    out = {name: res.to_dict() for name, res in attacks.items()}
    out["roc"] = {name: {"fpr": res.fpr[:: max(1, len(res.fpr) // 400)].round(6).tolist(),
                         "tpr": res.tpr[:: max(1, len(res.fpr) // 400)].round(6).tolist()}
                  for name, res in attacks.items()}
    out.update(model=args.overfit_model, pool=len(pool), shadows=args.shadows, epochs=args.overfit_epochs,
               steps=steps, seconds=round(time.perf_counter() - start, 1))
    return out


def plot(results: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    cells = [r for k, r in results.items()  # the threshold-only cells: one point per (method, init, origin)
             if k.startswith("study:") and k.endswith(":shadows=0") and r.get("classes") == 10]
    if cells:
        fig, ax = plt.subplots(figsize=(5.4, 3.8))
        for (method, init) in sorted({(r["method"], r["init"]) for r in cells}):
            rows = sorted((r for r in cells if r["method"] == method and r["init"] == init), key=lambda r: r["origin"])
            x = [r["origin"] for r in rows]
            ax.errorbar(x, [r["threshold"]["auc"][0] for r in rows], yerr=[r["threshold"]["auc"][1] for r in rows],
                        marker="o", capsize=3, label=f"{method}, {init} init")
        ax.axhline(0.5, ls="--", c="grey", lw=0.8)
        ax.set(xscale="log", xlabel="originals per class", ylabel="membership AUC (loss threshold)",
               title="MNIST, 10 distilled images per class")
        ax.set_xticks(sorted({r["origin"] for r in cells}), [str(v) for v in sorted({r["origin"] for r in cells})])
        ax.tick_params(axis="x", which="minor", labelbottom=False)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(IMAGES / "mia_auc_vs_origin.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    overfit = [r for k, r in results.items() if k.startswith("overfit:")]
    if overfit:
        over = max(overfit, key=lambda r: r["epochs"])
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
        floor = 1 / over["threshold"]["non_members"]  # the smallest non-zero FPR there is
        for name, curve in over["roc"].items():
            auc = over[name]["auc"]
            ax.plot(np.clip(curve["fpr"], floor, 1), np.clip(curve["tpr"], floor, 1), label=f"{name} (AUC {auc:.3f})")
        ax.plot([floor, 1], [floor, 1], ls="--", c="grey", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="false positive rate", ylabel="true positive rate",
               title=f"over-fit {over['model']}, {over['shadows']} shadows")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(IMAGES / "mia_overfit_roc.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=("study", "overfit", "plot"))
    parser.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    parser.add_argument("--methods", default="dm,random,herding")
    parser.add_argument("--origins", default="40,80,200,400", help="originals per class")
    parser.add_argument("--inits", default="real")
    parser.add_argument("--classes", default="10")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=0, help="0: per method (dm 200, dc/dsa/idc 100)")
    parser.add_argument("--models", type=int, default=3, help="target models per distilled set")
    parser.add_argument("--target-epochs", type=int, default=300,
                        help="epochs (DSA) of every target and shadow on a distilled set (default: 300)")
    parser.add_argument("--reference-steps", type=int, default=200,
                        help="SGD steps of the ConvNet-3 trained on the originals (default: 200)")
    parser.add_argument("--shadows", type=int, default=0, help="LiRA shadows (study: 0 = threshold only)")
    parser.add_argument("--query-shift", type=int, default=0,
                        help="LiRA also queries every model on copies moved this many pixels (0: one query)")
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--overfit-epochs", type=int, default=300)
    parser.add_argument("--overfit-model", default="lenet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    results = load_results(args.results)
    if args.experiment == "overfit":
        key = f"overfit:{args.overfit_model}:epochs={args.overfit_epochs}:pool={args.pool}:shadows={args.shadows}"
        if key not in results:
            results[key] = overfit_cell(args)
            save_results(args.results, results)
        r = results[key]
        print({k: r[k] for k in ("threshold", "lira_online", "lira_offline", "seconds")}, flush=True)
    elif args.experiment == "study":
        for method in args.methods.split(","):
            for classes in (int(v) for v in args.classes.split(",")):
                for init in args.inits.split(","):
                    for origin in (int(v) for v in args.origins.split(",")):
                        key = (f"study:{method}:{init}:origin={origin}:classes={classes}:ipc={args.ipc}:"
                               f"it={_iterations(method, args.iterations)}:shadows={args.shadows}"
                               + (f":shift={args.query_shift}" if args.query_shift else ""))
                        if key not in results:
                            results[key] = study_cell(args, method, origin, init, classes)
                            save_results(args.results, results)
                        r = results[key]
                        lira = {k[5:]: v["auc"][0] for k, v in r.items() if k.startswith("lira_")}
                        print(f"{key}: threshold AUC {r['threshold']['auc'][0]:.3f} ± {r['threshold']['auc'][1]:.3f}"
                              f" (originals {r['originals_threshold']['auc']:.3f}), {r['seconds']} s"
                              + (f"; LiRA AUC {lira}" if lira else ""), flush=True)
    if args.plot or args.experiment == "plot":
        for path in plot(results):
            print("wrote", path)


if __name__ == "__main__":
    main()
