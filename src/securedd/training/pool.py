"""A pool of trained networks on disk: DD's third kind of initialisation.

DD can learn images for networks that are already trained (a "pool of pretrained
networks"), e.g. trained on a source dataset and to be adapted to a target one. A pool is
a folder of ``net_000.safetensors`` ... files and a ``pool.json`` manifest (architecture,
the dataset trained on, the image shape the networks take, training settings, and a
SHA-256 per file, checked on load): a :class:`~securedd.store.HashedStore`. Training
resumes: networks already on disk are kept.

Example:
    >>> import tempfile
    >>> from securedd.data import load_dataset
    >>> train = load_dataset("digits", "train")
    >>> folder = train_pool("convnet_tiny", train, tempfile.mkdtemp(), count=2, epochs=1, progress=False)
    >>> pool = load_pool(folder)
    >>> len(pool), pool.model, pool.network(1).__class__.__name__
    (2, 'convnet_tiny', 'ConvNet')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from tqdm.auto import tqdm

from securedd.data.convert import convert_images
from securedd.data.spec import DatasetSpec, RealData
from securedd.errors import MismatchError
from securedd.models.registry import create_model
from securedd.rng import make_generator
from securedd.store import HashedStore
from securedd.training.loop import train_model
from securedd.training.settings import TrainSettings

__all__ = ["POOL_FORMAT", "NetworkPool", "load_pool", "pool_store", "train_pool"]

POOL_FORMAT = "securedd-network-pool/1"
MANIFEST = "pool.json"


def pool_store(folder: str | Path) -> HashedStore:
    """The pool folder ``folder`` as a hashed store (its ``pool.json`` lists every network file)."""
    return HashedStore(folder, MANIFEST, format_fields={"format": POOL_FORMAT}, what="pool network file",
                       fix="rerun `securedd pool` with the same --out to retrain it",
                       remake="delete the folder and make the pool again with `securedd pool`")


@dataclass(frozen=True)
class NetworkPool:
    """The manifest of a pool folder; :meth:`network` loads member ``i``."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.manifest["model"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.manifest["shape"])

    def __len__(self) -> int:
        return len(self.manifest["files"])

    def network(self, i: int, device: str | torch.device = "cpu") -> torch.nn.Module:
        """Member ``i``, its file checked against the manifest's SHA-256.

        Raises:
            ArtifactError: the file is missing or not the one the manifest records.
        """
        entry = self.manifest["files"][i]
        data = pool_store(self.folder).read_file(str(entry["name"]), entry.get("sha256"))
        net = create_model(self.model, self.shape, int(self.manifest["num_classes"]))
        net.load_state_dict(st_load(data))
        return net.to(device)


def train_pool(model: str, train: RealData, folder: str | Path, *, count: int, epochs: int, lr: float = 0.01,
               batch_size: int = 256, seed: int = 0, target: DatasetSpec | None = None,
               progress: bool = True) -> Path:
    """Train ``count`` networks on ``train`` (each from its own seed) into ``folder``.

    ``target``: train on ``train``'s images converted to another dataset's shape and
    normalisation, so the networks take that dataset's images (domain adaptation).
    """
    if count < 1 or epochs < 1:
        raise MismatchError(f"a pool needs count >= 1 and epochs >= 1; got count={count}, epochs={epochs}")
    folder = Path(folder)
    spec = target or train.spec
    images = convert_images(train.images, train.spec, spec) if target is not None else train.images
    store = pool_store(folder)
    settings = {"model": model, "dataset": train.spec.name, "shape": list(spec.shape),
                "num_classes": train.spec.num_classes, "epochs": epochs, "lr": lr, "batch_size": batch_size,
                "seed": seed, "spec": spec.to_dict()}
    files: list[dict[str, str]] = []
    old = store.read_manifest()
    if old is not None:
        if {k: old.get(k) for k in settings} != settings:
            raise MismatchError(f"{folder} holds a pool made with other settings; use another folder")
        files = old["files"]
    for i in tqdm(range(count), desc="train pool", disable=not progress):
        if i < len(files):
            continue
        gen = make_generator(seed, "pool", model, i)
        net = create_model(model, spec.shape, train.spec.num_classes, generator=gen)
        train_model(net, images, train.labels, TrainSettings(epochs=epochs, lr=lr, batch_size=batch_size), gen)
        data = st_save({k: v.detach().contiguous() for k, v in net.state_dict().items()})
        name = f"net_{i:03d}.safetensors"
        files.append({"name": name, "sha256": store.write_file(name, data)})
        store.write_manifest({"format": POOL_FORMAT, **settings, "files": files})
    return folder


def load_pool(folder: str | Path) -> NetworkPool:
    """Read a pool's manifest, with a clear error when the folder is not a pool.

    Raises:
        MismatchError: the folder holds no ``pool.json``.
        ArtifactError: its ``pool.json`` is unreadable or not a pool manifest.
    """
    folder = Path(folder)
    manifest = pool_store(folder).read_manifest()
    if manifest is None:
        raise MismatchError(f"{folder} is not a network pool (no {MANIFEST}); make one with `securedd pool`")
    return NetworkPool(folder, manifest)
