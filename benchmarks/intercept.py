"""An eavesdropper who trains its own way on an intercepted MNIST SecDD set, beside the key holder.

Distils the ``secdd`` preset for MNIST (LeNet key, 10 images) with ``--set`` overrides
(default: ``mode=learn`` from noise, the setting that meets the 10-image line) at
``--iterations``, with a fresh key, keeping the set and key in ``--work`` so a rerun goes
straight to the attacks. Then runs each attack the eavesdropper has without the key:

- ``train-on-intercept``: fresh networks (``--models``) under both standard protocols,
  soft and hard labels, SGD and a sweep of learning rates (``--lrs``);
- ``pretrained-finetune``: ConvNet-3 pretrained on ``--public-images`` CIFAR-10 training
  images turned grey 28x28, a fresh classifier, then fine-tuned the same ways;
- ``kd-from-labels``: a ConvNet-3 teacher from the sweep labels ``--public-images``
  unlabelled MNIST training images, and a ConvNet-3 student learns from it.

The attacker picks every learning rate, and its best attack, on 10 labelled MNIST training
images per class of its own; the test split only scores. Each attack's result and the key
holder's accuracy go to ``benchmarks/results/intercept.json``, keyed by the settings; a
finished attack is not repeated.

Usage:
    python benchmarks/intercept.py --data-root $SECUREDD_DATA --iterations 6000
    python benchmarks/intercept.py ... --attacks train-on-intercept --models lenet,mlp
    python benchmarks/intercept.py ... --attacks train-on-intercept --models resnet18 --protocols plain
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import load_results, save_results  # noqa: E402

RESULTS = HERE / "results" / "intercept.json"
LEARN = ["method.mode=learn", "method.lr=0.05", "method.lr_init=0.01", "method.label_scale=1",
         "method.decay_every=1500"]
ATTACKS = ("train-on-intercept", "pretrained-finetune", "kd-from-labels")


def set_folder(work: Path, iterations: int, extra: list[str]) -> tuple[str, Path]:
    """The setting's name and the folder its set and key are kept in."""
    setting = "|".join([str(iterations), *extra])
    return setting, work / hashlib.sha256(setting.encode()).hexdigest()[:12]


def secret_set(iterations: int, extra: list[str], data_root: str, folder: Path, train):  # type: ignore[no-untyped-def]
    """The SecDD set and its key, distilled once and kept in ``folder``."""
    from securedd.api import distill
    from securedd.artifacts import load_artifact
    from securedd.config import apply_overrides
    from securedd.presets import find_preset
    from securedd.secure.keys import load_key

    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "secret.safetensors"
    if not out.is_file():
        preset = find_preset("secdd", "mnist", 1)
        assert preset is not None
        cfg = apply_overrides(preset.config(), [f"method.iterations={iterations}",
                                                f"method.key='{folder / 'k.key'}'", f"data.root='{data_root}'",
                                                *extra])
        start = time.perf_counter()
        distill(cfg, out=out, real=train, progress=True, resume=Path(str(out) + ".ckpt").is_file())
        (folder / "seconds").write_text(f"{time.perf_counter() - start:.1f}")
    return load_artifact(out), load_key(folder / "k.key")


def add_set_flags(p: argparse.ArgumentParser, results: Path) -> None:
    """The flags of every benchmark on this set: data, threads, results and the kept set."""
    p.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    p.add_argument("--iterations", type=int, default=6000, help="the set's distillation iterations")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", type=Path, default=results)
    p.add_argument("--work", type=Path, default=HERE / "work" / "intercept", help="where the set and key are kept")


def open_set(p: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]):  # type: ignore[no-untyped-def]
    """(setting, folder, train, test, artifact, key): the MNIST splits and the set, distilled when missing."""
    from securedd.data import load_dataset

    if not args.data_root:
        p.error("--data-root (or SECUREDD_DATA) is required")
    torch.set_num_threads(args.threads)
    setting, folder = set_folder(args.work, args.iterations, extra)
    train = load_dataset("mnist", "train", root=args.data_root)
    test = load_dataset("mnist", "test", root=args.data_root, spec=train.spec)
    art, key = secret_set(args.iterations, extra, args.data_root, folder, train)
    return setting, folder, train, test, art, key


def main() -> None:
    from securedd.attacks import ATTACKS as REGISTRY
    from securedd.attacks.intercept import FinetuneTarget, attacker_validation, public_images
    from securedd.data import load_dataset

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_flags(p, RESULTS)
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="distillation overrides (default: mode=learn from noise, the documented setting)")
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--models", default="convnet,lenet,mlp,resnet18", help="train-on-intercept's architectures")
    p.add_argument("--protocols", default="plain,dsa", help="train-on-intercept's protocols")
    p.add_argument("--lrs", default="0.001,0.01,0.1")
    p.add_argument("--validation", type=int, default=10, help="the attacker's labelled images per class")
    p.add_argument("--public-images", type=int, default=5000)
    args = p.parse_args()
    setting, folder, train, test, art, key = open_set(p, args, LEARN if args.set is None else args.set)
    validation = attacker_validation(train, args.validation)
    for name in args.attacks.split(","):
        settings = {"lrs": args.lrs}
        if name == "train-on-intercept":
            settings["models"] = args.models
            if args.protocols != "plain,dsa":
                settings["protocols"] = args.protocols
        result_key = f"{setting}|{name}|{args.validation}val|{args.public_images}public|" + \
            "|".join(f"{k}={v}" for k, v in sorted(settings.items()))
        if result_key in load_results(args.results):
            print(f"{name}: done")
            continue
        public = None
        if name == "pretrained-finetune":
            cifar = load_dataset("cifar10", "train", root=args.data_root)
            public = public_images(cifar, args.public_images, art.spec)
        elif name == "kd-from-labels":
            public = public_images(train, args.public_images, art.spec)
        cls = REGISTRY.get(name)
        attack = cls(cls.parse_params(settings))
        start = time.perf_counter()
        result = attack(FinetuneTarget(art, validation, test, key, public=public), progress=True)
        results = load_results(args.results)
        distilled = folder / "seconds"
        results[result_key] = {"attack": name, "settings": settings, **result.to_dict(),
                               "seconds": round(time.perf_counter() - start, 1), "threads": args.threads,
                               "distill_seconds": float(distilled.read_text()) if distilled.is_file() else None,
                               "load_1min_before": os.getloadavg()[0]}
        save_results(args.results, results)
        print(f"{name}: {result.summary}", flush=True)


if __name__ == "__main__":
    main()
