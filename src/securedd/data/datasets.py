"""Named datasets (torchvision, ImageFolder fallback, scikit-learn's ``digits``) and custom data.

Example:
    >>> from securedd.data import load_dataset
    >>> train = load_dataset("digits", "train")
    >>> train.images.shape[1:], train.spec.num_classes
    (torch.Size([1, 8, 8]), 10)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.datasets as tvd
from PIL import Image

from securedd.data.folders import read_image_folder
from securedd.data.npz import check_unit_range, read_npz
from securedd.data.root import resolve_root
from securedd.data.spec import DatasetSpec, RealData
from securedd.errors import DataError
from securedd.registry import Registry
from securedd.rng import make_generator

__all__ = ["DATASETS", "MIN_STD", "DatasetSource", "dataset_spec", "list_datasets", "load_dataset", "load_splits"]

log = logging.getLogger(__name__)

DIGIT_STRATEGY = "color_crop_cutout_scale_rotate"  # no flip for digits and signs
FLIP_STRATEGY = "color_crop_cutout_flip_scale_rotate"
SPLITS = ("train", "test")

Reader = Callable[[Path, str, bool], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class DatasetSource:
    """How to read one named dataset: its layout, classes, statistics and torchvision reader.

    ``reader(root, split, download)`` returns uint8 pixels (N, C, H, W) and int64 labels;
    ``folder`` is where torchvision keeps it under the root (for error messages).
    ``mean``/``std`` of ``None`` are computed from the training split.
    """

    name: str
    channels: int
    size: tuple[int, int]
    class_names: tuple[str, ...]
    reader: Reader | None
    folder: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    dsa_strategy: str = FLIP_STRATEGY


DATASETS: Registry[DatasetSource] = Registry("dataset")


def _digits_names() -> tuple[str, ...]:
    return tuple(str(i) for i in range(10))


def _mnist_reader(cls: type) -> Reader:
    def read(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ds = cls(str(root), train=split == "train", download=download)
        return ds.data.unsqueeze(1), torch.as_tensor(ds.targets, dtype=torch.int64)

    return read


def _cifar_reader(cls: type) -> Reader:
    def read(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ds = cls(str(root), train=split == "train", download=download)
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(ds.targets)

    return read


def _svhn_read(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    ds = tvd.SVHN(str(root), split=split, download=download)
    return torch.from_numpy(ds.data), torch.as_tensor(ds.labels, dtype=torch.int64)


def _usps_read(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    ds = tvd.USPS(str(root), train=split == "train", download=download)
    return torch.from_numpy(ds.data).unsqueeze(1), torch.as_tensor(ds.targets, dtype=torch.int64)


def _gtsrb_read(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    ds = tvd.GTSRB(str(root), split=split, download=download)
    samples = ds._samples  # (path, label) pairs; images vary in size, resized to 32x32
    out = np.empty((len(samples), 32, 32, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(samples):
        with Image.open(path) as img:
            out[i] = np.asarray(img.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR))
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), labels


def _add(source: DatasetSource, help: str) -> None:
    DATASETS.register(source.name, help=help)(source)


_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_KMNIST_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")

_add(DatasetSource("mnist", 1, (28, 28), _digits_names(), _mnist_reader(tvd.MNIST), "MNIST",
                   (0.1307,), (0.3081,), DIGIT_STRATEGY), "MNIST handwritten digits, 28x28 grey, 60k/10k")
_add(DatasetSource("fashionmnist", 1, (28, 28), _FASHION_NAMES, _mnist_reader(tvd.FashionMNIST), "FashionMNIST",
                   (0.2861,), (0.3530,)), "Fashion-MNIST clothing, 28x28 grey, 60k/10k")
_add(DatasetSource("kmnist", 1, (28, 28), _KMNIST_NAMES, _mnist_reader(tvd.KMNIST), "KMNIST",
                   (0.1918,), (0.3483,), DIGIT_STRATEGY), "Kuzushiji-MNIST characters, 28x28 grey, 60k/10k")
_add(DatasetSource("usps", 1, (16, 16), _digits_names(), _usps_read, "usps.bz2 / usps.t.bz2",
                   None, None, DIGIT_STRATEGY), "USPS handwritten digits, 16x16 grey, 7291/2007")
_add(DatasetSource("svhn", 3, (32, 32), _digits_names(), _svhn_read, "train_32x32.mat / test_32x32.mat",
                   (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), DIGIT_STRATEGY),
     "SVHN house numbers, 32x32 RGB, 73k/26k")
_add(DatasetSource("cifar10", 3, (32, 32), _CIFAR10_NAMES, _cifar_reader(tvd.CIFAR10), "cifar-10-batches-py",
                   (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)), "CIFAR-10 objects, 32x32 RGB, 50k/10k")
_add(DatasetSource("cifar100", 3, (32, 32), tuple(f"class{i:02d}" for i in range(100)), _cifar_reader(tvd.CIFAR100),
                   "cifar-100-python", (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
     "CIFAR-100 objects, 32x32 RGB, 50k/10k")
_add(DatasetSource("gtsrb", 3, (32, 32), tuple(f"sign{i:02d}" for i in range(43)), _gtsrb_read, "gtsrb",
                   None, None, DIGIT_STRATEGY), "German traffic signs, resized to 32x32 RGB, 43 classes")
_add(DatasetSource("digits", 1, (8, 8), _digits_names(), None, "(bundled with scikit-learn)",
                   None, None, DIGIT_STRATEGY), "scikit-learn's bundled 8x8 digits (offline), 1438/359")


def list_datasets() -> list[str]:
    """Names of the registered datasets (custom data: ``imagefolder:PATH``, ``npz:PATH``)."""
    return DATASETS.names()


# --- reading raw [0, 1] pixels -------------------------------------------------------------


def _stratified_split(labels: torch.Tensor, test_fraction: float, key: str) -> dict[str, torch.Tensor]:
    """A deterministic per-class split (fixed seed: the same split on every run and machine)."""
    gen = make_generator(0, "split", key)
    train, test = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = max(1, round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return {"train": torch.cat(train).sort().values, "test": torch.cat(test).sort().values}


def _read_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    index = _stratified_split(labels, 0.2, "digits")[split]
    return pixels[index], labels[index]


def _read_named(source: DatasetSource, split: str, root: Path, download: bool,
                skip_bad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    if source.reader is None:
        return _read_digits(split)
    folder = root / source.name / split
    try:
        pixels, labels = source.reader(root, split, download)
        return pixels.float() / 255.0, labels
    except (RuntimeError, FileNotFoundError) as exc:  # torchvision: "Dataset not found or corrupted"; USPS opens files directly
        if folder.is_dir():
            pixels, labels, _ = read_image_folder(
                folder, list(_folder_class_names(source, folder)), channels=source.channels, size=source.size,
                skip_bad=skip_bad,
            )
            return pixels.float() / 255.0, labels
        hint = "" if download else " Pass --download to fetch it, or"
        raise DataError(
            f"dataset '{source.name}' ({split} split) was not found under '{root}': expected torchvision's "
            f"files ({source.folder}) there, or an ImageFolder tree at '{folder}/<class>/'.{hint} "
            f"point --data-root or $SECUREDD_DATA at the folder that holds it. ({exc})"
        ) from None


def _folder_class_names(source: DatasetSource, folder: Path) -> tuple[str, ...]:
    """The named dataset's class order, matched to the folder's sub-folder names."""
    found = {p.name for p in folder.iterdir() if p.is_dir()}
    if set(source.class_names) <= found:
        return source.class_names
    if len(found) == len(source.class_names):
        return tuple(sorted(found, key=lambda n: (len(n), n) if n.isdigit() else (0, n)))
    raise DataError(
        f"ImageFolder tree '{folder}' has {len(found)} class folders, but '{source.name}' has "
        f"{len(source.class_names)} classes ({', '.join(source.class_names[:10])}...)"
    )


def _split_class_names(path: Path) -> list[str]:
    """The class folders of ``path/train``, checked to be the same as those of ``path/test``.

    Labels number the sorted class folders, so a class missing from one split would shift
    every later label of that split.
    """
    found = {split: sorted(p.name for p in (path / split).iterdir() if p.is_dir()) for split in SPLITS}
    if found["train"] != found["test"]:
        train, test = set(found["train"]), set(found["test"])
        only = {"train": sorted(train - test), "test": sorted(test - train)}
        raise DataError(
            f"the class folders of '{path / 'train'}' and '{path / 'test'}' must have the same names; "
            + "; ".join(f"only in {split}/: {', '.join(names)}" for split, names in only.items() if names)
        )
    return found["train"]


def _read_custom(name: str, split: str, skip_bad: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    kind, _, path_text = name.partition(":")
    path = Path(path_text).expanduser()
    if kind == "npz":
        arrays = read_npz(path)
        return arrays[f"x_{split}"], arrays[f"y_{split}"], arrays["class_names"]
    if (path / "train").is_dir() and (path / "test").is_dir():
        pixels, labels, names = read_image_folder(path / split, _split_class_names(path), skip_bad=skip_bad)
        return pixels.float() / 255.0, labels, names
    pixels, labels, names = read_image_folder(path, skip_bad=skip_bad)
    index = _stratified_split(labels, 0.2, f"imagefolder:{path.resolve()}")[split]
    return pixels[index].float() / 255.0, labels[index], names


def _is_custom(name: str) -> bool:
    return name.startswith(("imagefolder:", "npz:"))


def _canonical(name: str) -> str:
    if _is_custom(name):
        kind, _, path = name.partition(":")
        return f"{kind}:{Path(path).expanduser().resolve()}"
    return DATASETS.get(name).name


def _read(name: str, split: str, root: Path, download: bool,
          skip_bad: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}; got '{split}'")
    if _is_custom(name):
        pixels, labels, names = _read_custom(name, split, skip_bad)
    else:
        source = DATASETS.get(name)
        pixels, labels = _read_named(source, split, root, download, skip_bad)
        names = list(source.class_names)
    check_unit_range(pixels, f"the {split} pixels of dataset '{name}'")
    return pixels, labels, names


#: The smallest per-channel standard deviation a dataset's statistics may have: a quarter of
#: one uint8 grey level (1/1020). A channel that varies less is constant in practice.
MIN_STD = 1e-3


def _stats(pixels: torch.Tensor, name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of [0, 1] training pixels, rounded to 4 decimals.

    A (near-)constant channel is a DataError rather than a floored std: normalising divides
    by the std, so a floor would either be undone by the rounding (0 -> NaN images, as once
    happened) or blow a channel that carries no information up into noise. Such a channel
    almost always means blank or wrongly converted images, which the user should see.
    """
    mean = pixels.mean(dim=(0, 2, 3), dtype=torch.float64)
    std = pixels.std(dim=(0, 2, 3)).double()
    flat = [c for c, s in enumerate(std.tolist()) if not s >= MIN_STD]  # NaN (one pixel) is flat too
    if flat:
        raise DataError(
            f"channel {', '.join(map(str, flat))} of the training images of dataset '{name}' is constant "
            f"(std {', '.join(f'{float(std[c]):.2g}' for c in flat)} < {MIN_STD}): images cannot be normalised "
            "by it. Check that the images are not blank, or store them with fewer channels."
        )
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)


def _spec_for(name: str, train_pixels: torch.Tensor | None, class_names: list[str], root: Path, download: bool,
              skip_bad: bool = False) -> DatasetSpec:
    canonical = _canonical(name)
    source = None if _is_custom(name) else DATASETS.get(name)
    if source is not None and source.mean is not None and source.std is not None:
        mean, std = source.mean, source.std
    else:
        if train_pixels is None:
            train_pixels, _, _ = _read(name, "train", root, download, skip_bad)
        mean, std = _stats(train_pixels, name)
    sample = train_pixels if train_pixels is not None else None
    channels, height, width = (source.channels, *source.size) if source else tuple(sample.shape[1:])  # type: ignore[union-attr]
    return DatasetSpec(
        name=canonical,
        channels=int(channels),
        height=int(height),
        width=int(width),
        num_classes=len(class_names),
        class_names=tuple(class_names),
        mean=tuple(mean),
        std=tuple(std),
        dsa_strategy=source.dsa_strategy if source else FLIP_STRATEGY,
    )


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | Path | None = None,
    download: bool = False,
    spec: DatasetSpec | None = None,
    skip_bad_images: bool = False,
) -> RealData:
    """Load one split of a dataset as normalised tensors.

    Args:
        name: a registered dataset (``list_datasets()``), ``imagefolder:PATH`` or ``npz:PATH``.
        split: ``"train"`` or ``"test"``.
        root: the data root (default ``$SECUREDD_DATA``, then ``~/.cache/securedd/data``).
        download: let torchvision download a missing dataset (nothing downloads otherwise).
        spec: normalise with this spec (e.g. the one stored in an artifact) instead of the
            dataset's own statistics.
        skip_bad_images: leave out image files that cannot be read (corrupt, truncated,
            empty, too large, not files), logging their number, instead of raising.

    Raises:
        DataError: the dataset is missing (the message names the expected path and the
            ``--download`` flag), unreadable, or unusable: pixels outside [0, 1] or NaN,
            labels out of range, a constant channel, a bad image file (named).
    """
    root_path = resolve_root(root, must_exist=not download)
    pixels, labels, class_names = _read(name, split, root_path, download, skip_bad_images)
    if spec is None:
        spec = _spec_for(name, pixels if split == "train" else None, class_names, root_path, download,
                         skip_bad_images)
    if tuple(pixels.shape[1:]) != spec.shape:
        raise DataError(f"dataset '{name}' has images of shape {tuple(pixels.shape[1:])}, but the spec says {spec.shape}")
    return RealData(spec.normalize(pixels.float()).contiguous(), labels.to(torch.int64), spec)


def load_splits(name: str, *, root: str | Path | None = None, download: bool = False,
                skip_bad_images: bool = False) -> tuple[RealData, RealData]:
    """``(train, test)`` of a dataset, the test split normalised with the train split's spec."""
    train = load_dataset(name, "train", root=root, download=download, skip_bad_images=skip_bad_images)
    return train, load_dataset(name, "test", root=root, download=download, spec=train.spec,
                               skip_bad_images=skip_bad_images)


def dataset_spec(name: str, *, root: str | Path | None = None, download: bool = False,
                 skip_bad_images: bool = False) -> DatasetSpec:
    """The spec of a dataset (reads the training split only when statistics must be computed)."""
    if not _is_custom(name):
        source = DATASETS.get(name)
        if source.mean is not None and source.reader is not None:
            return DatasetSpec(source.name, source.channels, *source.size, len(source.class_names),
                               source.class_names, source.mean, source.std, source.dsa_strategy)  # type: ignore[arg-type]
    return load_dataset(name, "train", root=root, download=download, skip_bad_images=skip_bad_images).spec
