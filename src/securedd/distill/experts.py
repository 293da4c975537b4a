"""Expert trajectories for trajectory matching (MTT): train, store, verify, read.

An expert is a freshly initialised network trained on the whole real training split with
plain SGD (lr 0.01, no momentum, no weight decay, batch 256, DSA on; REFERENCE section 3).
Its trajectory is the flat float32 parameter vector at the start and after every epoch:
an (epochs + 1, P) tensor. Each expert is one safetensors shard, ``expert_NNNN.safetensors``,
written atomically; ``manifest.json`` beside them records the model, dataset spec, training
settings, ZCA (on/off; the fitted transform is stored once as ``zca.safetensors``), the
parameter layout and the SHA-256 of every finished shard and of the ZCA file (a
:class:`~securedd.store.HashedStore`). Training resumes: finished shards are checked and
skipped. A shard is verified against the manifest before it is used.

Disk use is ``P * 4 bytes * (epochs + 1) * experts``; 100 ConvNet experts of 50 epochs on
CIFAR-10 take about 6.5 GB.

Example:
    >>> import tempfile
    >>> from securedd.config import RunConfig
    >>> cfg = RunConfig(model="convnet_tiny")  # digits, offline
    >>> out = tempfile.mkdtemp()
    >>> manifest = train_experts(cfg, out, num_experts=1, epochs=1, progress=False)
    >>> ExpertSet.open(out).trajectory(0).shape == (2, manifest["num_params"])
    True
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from tqdm.auto import tqdm

from securedd.config import RunConfig
from securedd.data import load_dataset
from securedd.data.spec import DatasetSpec, RealData
from securedd.data.zca import ZCAWhitening
from securedd.errors import ArtifactError, ConfigError, MismatchError
from securedd.models import create_model
from securedd.models.functional import flat_params, param_layout
from securedd.rng import make_generator
from securedd.store import HashedStore
from securedd.training import TrainSettings, train_model

__all__ = ["ExpertPlan", "ExpertSet", "expert_bytes", "human_bytes", "plan_experts", "shard_name", "train_experts"]

log = logging.getLogger(__name__)

FORMAT = "securedd-experts"
VERSION = 1
MANIFEST = "manifest.json"
# The settings that shape a trajectory: a resumed run must use the same ones.
_IDENTITY = ("model", "dataset", "epochs", "lr", "batch_size", "dsa_strategy", "zca", "seed", "num_params",
             "param_layout")
ZCA_FILE = "zca.safetensors"


def expert_bytes(num_params: int, epochs: int, num_experts: int) -> int:
    """Bytes of ``num_experts`` trajectories: ``num_params * 4 * (epochs + 1) * num_experts``."""
    return int(num_params) * 4 * (int(epochs) + 1) * int(num_experts)


def shard_name(index: int) -> str:
    """File name of expert ``index``'s shard."""
    return f"expert_{index:04d}.safetensors"


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def expert_store(out: str | Path) -> HashedStore:
    """The expert folder ``out`` as a hashed store: shards and ZCA file listed in ``manifest.json``."""
    return HashedStore(out, MANIFEST, format_fields={"format": FORMAT, "version": VERSION}, what="expert file",
                       fix="rerun `securedd experts` with the same --out to retrain it",
                       remake="delete the folder and train the experts again")


def _read_manifest(out: Path) -> dict[str, Any] | None:
    return expert_store(out).read_manifest()


@dataclass(frozen=True)
class ExpertPlan:
    """What :func:`train_experts` will do: sizes, what is already done, and the free disk."""

    out: Path
    num_params: int
    epochs: int
    num_experts: int
    done: tuple[int, ...]
    free_bytes: int

    @property
    def total_bytes(self) -> int:
        return expert_bytes(self.num_params, self.epochs, self.num_experts)

    @property
    def remaining_bytes(self) -> int:
        return expert_bytes(self.num_params, self.epochs, self.num_experts - len(self.done))

    def check_disk(self) -> None:
        """Raise ConfigError when the remaining shards do not fit on the disk."""
        if self.remaining_bytes > self.free_bytes:
            raise ConfigError(
                f"the expert trajectories need {human_bytes(self.remaining_bytes)} more but only {human_bytes(self.free_bytes)} "
                f"is free under {self.out}; free some space, pick another --out, or train fewer experts (--experts) "
                "or epochs (--epochs)"
            )


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{n} B"


def _finished(out: Path, manifest: dict[str, Any] | None, num_experts: int) -> tuple[int, ...]:
    if manifest is None:
        return ()
    shards = manifest.get("shards", {})
    return tuple(i for i in range(num_experts) if shard_name(i) in shards and (out / shard_name(i)).is_file())


def plan_experts(config: RunConfig, out: str | Path, *, num_experts: int, epochs: int,
                 spec: DatasetSpec | None = None) -> ExpertPlan:
    """Count parameters, find finished shards under ``out`` and the free disk (nothing is trained)."""
    if num_experts < 1 or epochs < 1:
        raise ConfigError(f"experts and epochs must be >= 1; got {num_experts} experts of {epochs} epochs")
    out = Path(out)
    if spec is None:
        from securedd.data import dataset_spec

        spec = dataset_spec(config.data.name, root=config.data.root, download=config.data.download,
                            skip_bad_images=config.data.skip_bad_images)
    model = create_model(config.model, spec.shape, spec.num_classes)
    manifest = _read_manifest(out)
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ExpertPlan(out, num_params, epochs, num_experts, _finished(out, manifest, num_experts), _free_bytes(out))


def _train_one(model: torch.nn.Module, data: RealData, *, epochs: int, lr: float, batch_size: int,
               dsa_strategy: str | None, generator: torch.Generator, on_epoch: Any = None) -> torch.Tensor:
    """(epochs + 1, P) trajectory of ``model`` trained on ``data`` with plain SGD."""
    # plain SGD: no momentum, no weight decay, whole batches, the learning rate kept to the end
    settings = TrainSettings(epochs=epochs, lr=lr, momentum=0.0, weight_decay=0.0, batch_size=batch_size,
                             dsa_strategy=dsa_strategy, chunk=0, lr_drop=False)
    snapshots = [flat_params(model).cpu()]

    def record(epoch: int, net: torch.nn.Module) -> None:
        snapshots.append(flat_params(net).cpu())
        if on_epoch is not None:
            on_epoch()

    train_model(model, data.images, data.labels, settings, generator, on_epoch=record)
    return torch.stack(snapshots).float().contiguous()


def train_experts(
    config: RunConfig,
    out: str | Path,
    *,
    num_experts: int = 100,
    epochs: int = 50,
    lr: float = 0.01,
    batch_size: int = 256,
    dsa: bool = True,
    zca: bool = False,
    real: RealData | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train expert trajectories of ``config.model`` on ``config.data`` into the folder ``out``.

    Expert ``i`` is initialised and shuffled from generators derived from ``config.seed`` and
    ``i``, so a resumed or extended run gives the same shards as an uninterrupted one.

    Args:
        config: dataset, model, seed and device.
        out: the folder of shards and ``manifest.json`` (created; reused to resume or extend).
        num_experts, epochs: how many experts, and SGD epochs per expert.
        lr, batch_size: the experts' plain SGD (no momentum, no weight decay).
        dsa: augment with the dataset's DSA strategy.
        zca: whiten the data with ZCA fitted on the training split (distil with ``zca=true``).
        real: the training split, if already loaded.
        progress: show a progress bar over experts and epochs.

    Returns:
        The manifest (also in ``out/manifest.json``).

    Raises:
        ConfigError: bad sizes, or not enough free disk for the remaining shards.
        MismatchError: ``out`` holds experts trained with other settings.
        ArtifactError: a finished shard does not match its recorded SHA-256.
    """
    out = Path(out)
    device = torch.device(config.device)
    if real is None:
        real = load_dataset(config.data.name, "train", root=config.data.root, download=config.data.download,
                            skip_bad_images=config.data.skip_bad_images)
    plan = plan_experts(config, out, num_experts=num_experts, epochs=epochs, spec=real.spec)
    plan.check_disk()
    strategy = real.spec.dsa_strategy if dsa else None
    probe = create_model(config.model, real.spec.shape, real.spec.num_classes)
    identity = {
        "model": config.model, "dataset": real.spec.to_dict(), "epochs": epochs, "lr": lr, "batch_size": batch_size,
        "dsa_strategy": strategy, "zca": zca, "seed": config.seed, "num_params": plan.num_params,
        "param_layout": [[name, list(shape)] for name, shape in param_layout(probe)],
    }
    store = expert_store(out)
    manifest = store.read_manifest()
    if manifest is not None:
        _check_same(manifest, identity, out)
        manifest["num_experts"] = max(int(manifest.get("num_experts", 0)), num_experts)
    else:
        manifest = {"format": FORMAT, "version": VERSION, **identity, "num_experts": num_experts, "shards": {},
                    "zca_sha256": None}
    out.mkdir(parents=True, exist_ok=True)
    whitener = None
    if zca:  # fitted once and stored: resumed runs and distillation use these very values
        if manifest.get("zca_sha256"):
            whitener = _load_zca(out, manifest)
        else:
            whitener = ZCAWhitening.fit_data(real)
            manifest["zca_sha256"] = store.write_file(ZCA_FILE, st_save(whitener.to_tensors()))
    store.write_manifest(manifest)
    data = (whitener.apply(real) if whitener is not None else real).to(device)
    for i in plan.done:
        store.read_file(shard_name(i), manifest["shards"][shard_name(i)])
    todo = [i for i in range(num_experts) if i not in plan.done]
    log.info("experts: %d finished, %d to train under %s", len(plan.done), len(todo), out)
    bar = tqdm(total=len(todo) * epochs, desc="experts", disable=not progress)
    for i in todo:
        model = create_model(config.model, real.spec.shape, real.spec.num_classes,
                             generator=make_generator(config.seed, "experts", i)).to(device)
        gen = make_generator(config.seed, "experts", i, "train", device=device)
        trajectory = _train_one(model, data, epochs=epochs, lr=lr, batch_size=batch_size, dsa_strategy=strategy,
                                generator=gen, on_epoch=bar.update)
        # one metadata key: safetensors orders several keys arbitrarily, and shards must be byte-stable
        blob = st_save({"trajectory": trajectory}, metadata={FORMAT: json.dumps({"expert": i, "epochs": epochs})})
        manifest["shards"][shard_name(i)] = store.write_file(shard_name(i), blob)
        store.write_manifest(manifest)
    bar.close()
    return manifest


def _check_same(manifest: dict[str, Any], identity: dict[str, Any], out: Path) -> None:
    differ = [k for k in _IDENTITY if json.loads(json.dumps(manifest.get(k))) != json.loads(json.dumps(identity[k]))]
    if differ:
        detail = "; ".join(f"{k}: stored {manifest.get(k)!r}, asked {identity[k]!r}" for k in differ
                           if k not in ("dataset", "param_layout"))
        raise MismatchError(
            f"{out} holds experts trained with other settings ({', '.join(differ)}{': ' + detail if detail else ''}); "
            "use another --out folder, or the same settings to resume"
        )


def _load_zca(root: Path, manifest: dict[str, Any]) -> ZCAWhitening:
    data = expert_store(root).read_file(ZCA_FILE, manifest.get("zca_sha256"))
    zca = ZCAWhitening.from_tensors(st_load(data))
    if zca is None:
        raise ArtifactError(f"{root / ZCA_FILE}: holds no ZCA transform; delete the folder and retrain the experts")
    return zca


@dataclass
class ExpertSet:
    """Finished expert trajectories in a folder, verified shard by shard on first use."""

    root: Path
    manifest: dict[str, Any]
    indices: tuple[int, ...]
    _verified: set[int] = field(default_factory=set)

    @classmethod
    def open(cls, root: str | Path) -> ExpertSet:
        """Read the manifest of ``root``.

        Raises:
            ConfigError: no manifest or no finished expert (says to run ``securedd experts``).
        """
        root = Path(root)
        manifest = _read_manifest(root)
        if manifest is None:
            raise ConfigError(
                f"no expert trajectories in '{root}' (no {MANIFEST}); train them first, e.g. "
                f"`securedd experts --dataset digits --model convnet --out {root}`"
            )
        indices = tuple(int(name[len("expert_"):-len(".safetensors")]) for name in sorted(manifest.get("shards", {})))
        if not indices:
            raise ConfigError(f"'{root}' has no finished expert yet; run `securedd experts ... --out {root}` to train them")
        return cls(root, manifest, indices)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def epochs(self) -> int:
        return int(self.manifest["epochs"])

    @property
    def spec(self) -> DatasetSpec:
        return DatasetSpec.from_dict(self.manifest["dataset"])

    def _path(self, k: int) -> Path:
        name = shard_name(self.indices[k])
        if k not in self._verified:
            data = expert_store(self.root).read_file(name, self.manifest["shards"].get(name))
            try:
                tensor = st_load(data)["trajectory"]
            except Exception as exc:  # safetensors raises its own types
                raise ArtifactError(f"{self.root / name}: unreadable expert shard ({exc}); delete it and retrain") from None
            if tuple(tensor.shape) != (self.epochs + 1, int(self.manifest["num_params"])):
                raise ArtifactError(f"{self.root / name}: trajectory of shape {tuple(tensor.shape)} does not fit the manifest")
            self._verified.add(k)
        return self.root / name

    def zca(self) -> ZCAWhitening | None:
        """The ZCA transform the experts were trained with (verified), or ``None``."""
        return _load_zca(self.root, self.manifest) if self.manifest.get("zca") else None

    def trajectory(self, k: int) -> torch.Tensor:
        """(epochs + 1, P) trajectory of the ``k``-th finished expert."""
        with safe_open(str(self._path(k)), framework="pt") as fh:
            trajectory: torch.Tensor = fh.get_tensor("trajectory")
            return trajectory

    def snapshots(self, k: int, epochs: tuple[int, ...]) -> list[torch.Tensor]:
        """The (P,) snapshots of expert ``k`` after each of ``epochs`` (reads only those rows)."""
        with safe_open(str(self._path(k)), framework="pt") as fh:
            rows = fh.get_slice("trajectory")
            return [rows[e : e + 1][0] for e in epochs]
