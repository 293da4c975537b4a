"""SecDD's frozen-image modes at the sizes they need: the key holder's accuracy against set size.

In the frozen modes the images are never learned: ``noise`` (seeded standard-normal noise)
or ``unrelated:cifar10`` (CIFAR-10 training images turned grey 28x28). Only the soft labels
(and, in one arm, the per-step rates) carry what the key's network must learn. For every
size of ``--sizes`` (images in all, a multiple of 10), mode of ``--modes`` and arm of
``--arms`` it distils the MNIST ``secdd`` preset (LeNet key, one GD step over all images
per epoch) with the soft-label fork's initial step rate (0.01) and one-hot label scale (1),
the settings of the noise-mode runs of ``benchmarks/secdd.py`` (the preset's 0.02 and 5 stay
at chance here), at ``--iterations`` with one key for every cell, then scores:

- the key holder: the key's network trained by the set (MNIST test accuracy);
- ``--seeds`` other initialisations of the same architecture (mean and max), so a size
  that teaches every LeNet shows up as one.

Arms: ``labels`` learns the labels only (every step at the preset's rate, 3 epochs);
``rates`` learns the labels and one rate per step, over ``--epochs`` epochs.

Each cell's set is kept in ``--work`` and checkpointed, so a stopped run resumes; a finished
cell is not repeated. Results go to ``benchmarks/results/secdd_frozen.json``, keyed by the
cell's settings.

Usage:
    python benchmarks/secdd_frozen.py --data-root $SECUREDD_DATA --iterations 2000
    python benchmarks/secdd_frozen.py ... --sizes 50,100 --modes noise --arms rates
    python benchmarks/secdd_frozen.py ... --sizes 100 --set method.lr=0.005   # a gentler Adam rate
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import load_results, save_results  # noqa: E402

RESULTS = HERE / "results" / "secdd_frozen.json"
PLOT = HERE.parent / "docs" / "images" / "secdd_frozen_sizes.png"
ARMS = ("labels", "rates")
FORK = ["method.lr_init=0.01", "method.label_scale=1"]  # the soft-label fork's MNIST settings, as benchmarks/secdd.py's runs


def overrides(size: int, mode: str, arm: str, iterations: int, epochs: int, extra: list[str]) -> list[str]:
    """The cell's changes to the preset (the key path comes apart)."""
    if size % 10 or size < 10:
        raise SystemExit(f"--sizes takes multiples of 10 (one image per class and more); got {size}")
    arm_set = ["method.learn_lrs=false"] if arm == "labels" else [f"method.epochs={epochs}"]
    return [f"method.ipc={size // 10}", f"method.mode={mode}", f"method.iterations={iterations}",
            f"method.decay_every={max(1, iterations // 4)}", *FORK, *arm_set, *extra]


def main() -> None:
    from securedd.api import distill
    from securedd.artifacts import load_artifact
    from securedd.attacks.key_search import replay_key
    from securedd.config import apply_overrides
    from securedd.data import load_dataset
    from securedd.presets import find_preset
    from securedd.secure.keys import TargetKey, load_key, new_key, save_key

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--sizes", default="10,50,100,200")
    p.add_argument("--modes", default="noise,unrelated:cifar10")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--epochs", type=int, default=10, help="the rates arm's epochs (the preset's: 3)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="more overrides for every cell (part of the cell's name)")
    p.add_argument("--seeds", type=int, default=3, help="other LeNet initialisations scored per cell")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--work", type=Path, default=HERE / "work" / "secdd_frozen")
    p.add_argument("--plot", type=Path, default=PLOT, help="the key holder and the other seeds against size (PNG)")
    p.add_argument("--plot-only", action="store_true", help="draw the plot from the results file and stop")
    args = p.parse_args()
    if not args.data_root:
        p.error("--data-root (or SECUREDD_DATA) is required")
    unknown = set(args.arms.split(",")) - set(ARMS)
    if unknown:
        p.error(f"--arms takes {', '.join(ARMS)}; got {', '.join(sorted(unknown))}")
    torch.set_num_threads(args.threads)
    if args.plot_only:
        print(f"wrote {plot(load_results(args.results), args.iterations, args.plot)}")
        return
    train = load_dataset("mnist", "train", root=args.data_root)
    test = load_dataset("mnist", "test", root=args.data_root, spec=train.spec)
    args.work.mkdir(parents=True, exist_ok=True)
    key_path = args.work / "k.key"
    if not key_path.is_file():
        save_key(new_key("lenet", "xavier"), key_path)
    key = load_key(key_path)
    preset = find_preset("secdd", "mnist", 1)
    assert preset is not None
    cells = [(m, a, int(s)) for m in args.modes.split(",") for a in args.arms.split(",") for s in args.sizes.split(",")]
    for mode, arm, size in cells:
        changes = overrides(size, mode, arm, args.iterations, args.epochs, args.set)
        name = "|".join(changes)
        if name in load_results(args.results):
            print(f"{name}: done", flush=True)
            continue
        folder = args.work / name.replace("|", "_").replace("=", "-").replace(":", "-")
        folder.mkdir(exist_ok=True)
        out = folder / "secret.safetensors"
        cfg = apply_overrides(preset.config(), [*changes, f"method.key='{key_path}'", f"data.root='{args.data_root}'"])
        load = os.getloadavg()[0]
        start = time.perf_counter()
        if not out.is_file():
            distill(cfg, out=out, real=train, progress=True, resume=Path(str(out) + ".ckpt").is_file())
        seconds = round(time.perf_counter() - start, 1)
        art = load_artifact(out)
        rng = torch.Generator().manual_seed(1)
        others = [replay_key(art, TargetKey(key.model, int(torch.randint(0, 2**62, (1,), generator=rng)),
                                            key.init_scheme), test).accuracy for _ in range(args.seeds)]
        results = load_results(args.results)
        results[name] = {"size": size, "mode": mode, "arm": arm, "iterations": args.iterations,
                         "epochs": args.epochs if arm == "rates" else 3,
                         "key_holder": round(replay_key(art, key, test).accuracy, 2),
                         "other_seeds": {"n": args.seeds, "mean": round(sum(others) / len(others), 2),
                                         "max": round(max(others), 2)},
                         "final_loss": art.metadata["info"]["final_loss"], "seconds": seconds,
                         "threads": args.threads, "load_1min_before": round(load, 2)}
        save_results(args.results, results)
        print(f"{name}: key holder {results[name]['key_holder']}%, other seeds {results[name]['other_seeds']}",
              flush=True)
    print(f"wrote {plot(load_results(args.results), args.iterations, args.plot)}")


def plot(results: dict, iterations: int, path: Path) -> Path:
    """The key holder (solid) and the best other seed (dashed) against size, one colour per mode and arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    cells = [r for r in results.values() if r["iterations"] == iterations]
    lines = sorted({(r["mode"], r["arm"]) for r in cells})
    for k, (mode, arm) in enumerate(lines):
        rows = sorted((r for r in cells if (r["mode"], r["arm"]) == (mode, arm)), key=lambda r: r["size"])
        sizes = [r["size"] for r in rows]
        ax.plot(sizes, [r["key_holder"] for r in rows], marker="o", color=f"C{k}", label=f"{mode}, {arm}: key holder")
        ax.plot(sizes, [r["other_seeds"]["max"] for r in rows], linestyle="--", color=f"C{k}",
                label=f"{mode}, {arm}: best other seed")
    ax.axhline(90, color="black", linestyle=":", label="90%")
    ax.set_xlabel("images sent (frozen)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
