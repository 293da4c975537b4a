"""The demo: every capability of securedd on one small dataset, offline, in about two minutes.

Three sections, each evaluated with the same protocol (fresh ConvNet-3s, final test accuracy):

1. the best registered method against random real images at the demo's IPC, beside a
   ConvNet-3 trained on the whole training set;
2. on ``digits``, federated distillation (SFDD, DC on each client's shard, on Flower's
   simulation engine) beside the same method run centrally at the same budget and random
   real images at IPC 1;
3. on ``digits``, a SecDD round trip: a signed set that trains the key's network and
   hardly any other.

Every set the demo evaluates is checked against random real images of the same size (its
*floor*); :attr:`DemoResult.failures` names each set below its floor, and the command line
exits non-zero on any. Everything is seeded: the same seed gives the same tables and
artifacts, the SecDD key included (a demo key derived from the seed, so that the tables
repeat; a real sender lets ``securedd distill`` draw a fresh key from the OS).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securedd.api import distill, evaluate
from securedd.artifacts import Artifact
from securedd.config import DataConfig, EvalConfig, RunConfig, apply_overrides
from securedd.data import load_splits
from securedd.data.spec import RealData
from securedd.distill import METHODS
from securedd.models import create_model
from securedd.rng import derive_seed, make_generator
from securedd.store import atomic_write_bytes
from securedd.training import TrainSettings, score_model, train_model
from securedd.visualize import save_grid

__all__ = ["FEDERATED_DEMO", "PUBLISHED_WHOLE_DATASET", "SECDD_DEMO", "DemoResult", "best_method", "demo_key_seed",
           "federated_settings", "run_demo"]

# REFERENCE section 6: ConvNet-3 trained on the whole training set.
PUBLISHED_WHOLE_DATASET = {"mnist": 99.6, "fashionmnist": 93.5, "svhn": 95.4, "cifar10": 84.8, "cifar100": 56.2}
WHOLE_DATASET_LIMIT = 5000  # train the whole-dataset reference here only up to this many images
WHOLE_DATASET_EPOCHS = 40

# SFDD: DC from noise with a ConvNet-2 (ConvNet-3 pools 8x8 digits down to 2x2 before its last
# norm, where gradient matching stalls), one matching step per client and round, server
# momentum 0.5 (FedAvgM: the rounds move as centralised DC's image optimiser does).
FEDERATED_DEMO = ["method.name=dc", "model=convnet_tiny", "method.ipc=1", "method.init=noise", "method.chunk=0"]
FEDERATED_CLIENTS, FEDERATED_ROUNDS, FEDERATED_MOMENTUM = 3, 50, 0.5

# SecDD: images learned from noise, one learned GD step of the key's network: a large,
# init-specific step that the key's network turns into a classifier and other networks do not.
SECDD_DEMO = ["method.name=secdd", "model=convnet_tiny", "method.ipc=1", "method.iterations=300", "method.mode=learn",
              "method.epochs=1", "method.batch_real=256", "method.lr=0.05", "method.lr_init=0.5"]
SECDD_OTHER_SEEDS = 5
SECDD_OTHER_ARCHS = ("convnet", "lenet", "mlp")


@dataclass
class DemoResult:
    """The demo's tables, its floor checks and the files it wrote."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    secure: list[dict[str, Any]] = field(default_factory=list)
    federated: dict[str, Any] = field(default_factory=dict)
    floors: list[dict[str, Any]] = field(default_factory=list)
    """One entry per evaluated set: its accuracy, the random-real floor of its size, ``ok``."""

    @property
    def failures(self) -> list[str]:
        """A warning for each set below random real images of its size (empty: all above)."""
        return [f"{f['section']}: '{f['set']}' reaches {f['accuracy']:.2f}%, below its floor of {f['floor']:.2f}% "
                f"({f['floor_set']}); this set is broken, not a result" for f in self.floors if not f["ok"]]

    def to_markdown(self) -> str:
        """The main table: the best method and random real images at the demo's IPC."""
        lines = ["| method | images | accuracy (%) | whole dataset (%) |", "|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r['method']} | {r['images']} | {r['mean']:.2f} ± {r['std']:.2f} | {r['whole_dataset']} |")
        return "\n".join(lines)

    def federated_markdown(self) -> str:
        """SFDD beside central DC and random real images (a note where Flower is missing)."""
        f = self.federated
        if not f:
            return ""
        head = (f"\n## Federated distillation (SFDD): {f['clients']} clients, {f['rounds']} rounds on Flower's "
                "simulation engine\n\n")
        lines = ["| set | images | accuracy (%) |", "|---|---|---|"]
        lines += [f"| {r['set']} | {r['images']} | {r['mean']:.2f} ± {r['std']:.2f} |" for r in f["rows"]]
        note = f"\n{f['note']}\n" if "note" in f else ""
        if "skipped" in f:
            note = f"\nSFDD skipped: {f['skipped']}\n"
        return head + "\n".join(lines) + "\n" + note

    def secure_markdown(self) -> str:
        """The SecDD round trip as a table (empty when it did not run)."""
        if not self.secure:
            return ""
        lines = ["", "## SecDD round trip: 10 images, signed, trained by the key's network", "",
                 "| network | test accuracy (%) |", "|---|---|"]
        lines += [f"| {r['network']} | {r['accuracy']:.2f} |" for r in self.secure]
        lines += ["", "The key's network learns from the set; networks of other seeds or architectures, trained the "
                      "same way, hardly do. This shows the mechanism, not its security: the attacks (key search, "
                      "other architectures, a trained eavesdropper) are measured in docs/benchmarks.md."]
        return "\n".join(lines) + "\n"

    def floors_markdown(self) -> str:
        """Every evaluated set beside random real images of its size."""
        if not self.floors:
            return ""
        lines = ["", "## Sanity floors: every set against random real images of its size", "",
                 "| section | set | accuracy (%) | floor (%) | |", "|---|---|---|---|---|"]
        lines += [f"| {f['section']} | {f['set']} | {f['accuracy']:.2f} | {f['floor']:.2f} | "
                  f"{'ok' if f['ok'] else 'BELOW'} |" for f in self.floors]
        return "\n".join(lines) + "\n"


def best_method() -> str:
    """The registered method with the highest ``demo_rank``."""
    return max(METHODS.names(), key=lambda n: (METHODS.get(n).demo_rank, n))


def _floor(result: DemoResult, section: str, name: str, accuracy: float, floor: dict[str, Any]) -> None:
    result.floors.append({"section": section, "set": name, "accuracy": accuracy, "floor": floor["mean"],
                          "floor_set": f"random real, {floor['images']} images", "ok": accuracy >= floor["mean"]})


class _Section:
    """What every section shares: the data, the protocol, the output folder and the files written."""

    def __init__(self, data: DataConfig, train: RealData, test: RealData, out: Path, eval_cfg: EvalConfig, seed: int,
                 device: str, progress: bool, verbose: bool, files: list[Path]) -> None:
        self.data, self.train, self.test, self.out, self.eval_cfg = data, train, test, out, eval_cfg
        self.seed, self.device, self.progress, self.verbose, self.files = seed, device, progress, verbose, files

    def config(self, overrides: list[str]) -> RunConfig:
        base = RunConfig(data=self.data, seed=self.seed, device=self.device, eval=self.eval_cfg)
        return apply_overrides(base, overrides)

    def distill(self, cfg: RunConfig, name: str) -> Artifact:
        path = self.out / f"{name}.safetensors"
        art = distill(cfg, out=path, real=self.train, progress=self.progress)
        self.files += [path, save_grid(art, path.with_suffix(".png"))]
        return art

    def score(self, art: Artifact, name: str) -> dict[str, Any]:
        arch = evaluate(art, config=self.eval_cfg, test=self.test, device=self.device, seed=self.seed,
                        progress=self.progress).archs[0]
        return {"set": name, "images": int(art.images.shape[0]), "mean": arch.mean, "std": arch.std,
                "accuracies": arch.accuracies, "sha256": art.sha256}


def federated_settings(data: DataConfig, seed: int, out: str | Path, progress: bool = False) -> Any:
    """The demo's federation (:class:`~securedd.federated.settings.FederationSettings`; needs the [fl] extra)."""
    from securedd.federated.settings import FederationSettings

    cfg = apply_overrides(RunConfig(data=data, seed=seed), FEDERATED_DEMO)
    return FederationSettings(cfg, clients=FEDERATED_CLIENTS, rounds=FEDERATED_ROUNDS,
                              server_momentum=FEDERATED_MOMENTUM, out=str(out), progress=progress)


def _federated(s: _Section, result: DemoResult, random_row: dict[str, Any]) -> dict[str, Any]:
    """Section 2: SFDD on Flower, the same DC centrally at the same budget, beside ``random_row`` (IPC 1)."""
    central_cfg = s.config([*FEDERATED_DEMO, f"method.iterations={FEDERATED_ROUNDS}"])
    central = s.score(s.distill(central_cfg, "dc_central"), f"DC centrally, {FEDERATED_ROUNDS} iterations")
    section: dict[str, Any] = {"clients": FEDERATED_CLIENTS, "rounds": FEDERATED_ROUNDS,
                               "server_momentum": FEDERATED_MOMENTUM, "rows": [central, random_row]}
    _floor(result, "SFDD", central["set"], central["mean"], random_row)
    try:
        import flwr  # noqa: F401

        from securedd.federated.apps import run_federation
    except ImportError:
        section["skipped"] = "install the [fl] extra (pip install 'securedd[fl]') for the federated round"
        return section
    path = s.out / "federated.safetensors"
    for stale in (path, path.with_suffix(".server.pt")):
        stale.unlink(missing_ok=True)  # a fresh federation each demo
    art = run_federation(federated_settings(s.data, s.seed, path, s.progress), verbose=s.verbose)
    s.files += [path, save_grid(art, path.with_suffix(".png"))]
    row = s.score(art, f"SFDD, {FEDERATED_CLIENTS} clients (DC on each shard)")
    section["rows"].insert(0, row)
    section["sha256"] = art.sha256
    section["note"] = (f"SFDD is {row['mean'] - central['mean']:+.2f} points from DC run centrally on all the data "
                       f"for as many steps on the set as the federation has rounds (a round: one matching step on "
                       f"every client, averaged, server momentum {FEDERATED_MOMENTUM}; matching with ConvNet-2, "
                       "evaluated with ConvNet-3).")
    _floor(result, "SFDD", row["set"], row["mean"], random_row)
    return section


def demo_key_seed(seed: int) -> int:
    """The SecDD key seed the demo derives from its run seed (so that its tables repeat)."""
    return derive_seed(seed, "demo", "secdd-key")


def _secdd_round_trip(s: _Section, result: DemoResult, floor: dict[str, Any]) -> list[dict[str, Any]]:
    """Section 3. Sender: SecDD, signed. Receiver: verify, train the key's network. Others: wrong keys."""
    from securedd.attacks.key_search import replay_key
    from securedd.secure import TargetKey, generate_signing_keys, save_key, sign_artifact, verify_artifact

    key_path = s.out / "target.key"
    key = TargetKey("convnet_tiny", demo_key_seed(s.seed))
    save_key(key, key_path)
    art = s.distill(s.config([*SECDD_DEMO, f"method.key='{key_path}'"]), "secret")
    private, public = generate_signing_keys(s.out / "sender")
    signature = sign_artifact(art.path, private)  # type: ignore[arg-type]
    verify_artifact(art.path, public)  # type: ignore[arg-type]
    s.files += [key_path, private, public, signature]
    receiver = replay_key(art, key, s.test).accuracy
    others = [replay_key(art, TargetKey(key.model, key.seed + k, key.init_scheme), s.test).accuracy
              for k in range(1, SECDD_OTHER_SEEDS + 1)]
    rows: list[dict[str, Any]] = [
        {"network": f"{key.model}, the key's seed (receiver)", "accuracy": receiver},
        {"network": f"{key.model}, {len(others)} other seeds (mean)", "accuracy": sum(others) / len(others)},
        {"network": f"{key.model}, {len(others)} other seeds (best)", "accuracy": max(others)}]
    rows += [{"network": f"{arch}, the key's seed", "accuracy": replay_key(art, TargetKey(arch, key.seed), s.test).accuracy}
             for arch in SECDD_OTHER_ARCHS]
    _floor(result, "SecDD", rows[0]["network"], receiver, floor)
    return rows


def _whole_dataset(train: RealData, test: RealData, epochs: int, seed: int, device: str) -> str:
    if len(train) > WHOLE_DATASET_LIMIT:
        published = PUBLISHED_WHOLE_DATASET.get(train.spec.name)
        return f"{published} (published)" if published is not None else "n/a"
    gen = make_generator(seed, "demo", "whole")
    model = create_model("convnet", train.spec.shape, train.spec.num_classes, generator=gen).to(device)
    settings = TrainSettings(epochs=epochs, batch_size=128)
    train_model(model, train.images.to(device), train.labels.to(device), settings, gen)
    return f"{score_model(model, test.to(device)).accuracy:.2f}"


def run_demo(
    *,
    dataset: str = "digits",
    ipc: int = 10,
    runs: int = 3,
    epochs: int = 300,
    dsa: bool = False,
    out_dir: str | Path = "demo-out",
    data_root: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    verbose: bool = False,
    skip_bad_images: bool = False,
) -> DemoResult:
    """Run the demo's sections (see the module docstring) and write ``demo.md`` and ``demo.json``.

    The SFDD and SecDD sections run on ``digits`` only, where their settings were measured.
    ``verbose`` lets Flower and Ray log as they do by default.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    train, test = load_splits(dataset, root=data_root, skip_bad_images=skip_bad_images)
    result = DemoResult()
    eval_cfg = EvalConfig(runs=runs, epochs=epochs, dsa=dsa)
    s = _Section(DataConfig(dataset, data_root), train, test, out, eval_cfg, seed, device, progress, verbose, result.files)
    for method in dict.fromkeys([best_method(), "random"]):
        cfg = s.config([f"method.name={method}", f"method.ipc={ipc}"])
        row = s.score(s.distill(cfg, f"{Path(train.spec.name).name}_{method}_ipc{ipc}"), method)
        result.rows.append({"method": method, **{k: v for k, v in row.items() if k != "set"}})
    whole = _whole_dataset(train, test, WHOLE_DATASET_EPOCHS, seed, device)
    for row in result.rows:
        row["whole_dataset"] = whole
    random_main = result.rows[-1]
    for row in result.rows[:-1]:
        _floor(result, f"IPC {ipc}", row["method"], row["mean"], random_main)
    if dataset == "digits":  # both sections make 10 images: random real ones are their floor
        random_ipc1 = s.score(s.distill(s.config(["method.name=random", "method.ipc=1"]), "random_ipc1"),
                              "random real images")
        result.federated = _federated(s, result, random_ipc1)
        result.secure = _secdd_round_trip(s, result, random_ipc1)
    result.seconds = time.perf_counter() - start
    protocol = (f"ConvNet-3, {runs} fresh models per set, {epochs} epochs, SGD lr 0.01, "
                f"augmentation {'DSA' if dsa else 'off'}; final test accuracy (mean ± std)")
    md = (f"# securedd demo: {train.spec.name}, IPC {ipc}\n\n{protocol}. Whole dataset: a ConvNet-3 trained on "
          f"all {len(train)} training images for {WHOLE_DATASET_EPOCHS} epochs (or the published figure for large "
          f"datasets).\n\n{result.to_markdown()}\n\nGrids: {', '.join(p.name for p in result.files if p.suffix == '.png')}\n"
          f"{result.federated_markdown()}{result.secure_markdown()}{result.floors_markdown()}")
    atomic_write_bytes(out / "demo.md", md.encode())
    atomic_write_bytes(out / "demo.json", json.dumps({"dataset": train.spec.name, "ipc": ipc, "protocol": protocol,
                                                      "rows": result.rows, "secdd": result.secure,
                                                      "federated": result.federated, "floors": result.floors},
                                                     indent=2).encode())
    result.files += [out / "demo.md", out / "demo.json"]
    return result
