import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from securedd.data import dataset_spec, list_datasets, load_dataset, load_splits
from securedd.errors import DataError, UnknownNameError

NAMED = ["mnist", "fashionmnist", "kmnist", "usps", "svhn", "cifar10", "cifar100", "gtsrb", "digits"]


def test_all_named_datasets_are_registered():
    assert set(NAMED) <= set(list_datasets())


def test_digits_split_is_deterministic_disjoint_and_normalised(digits_train, digits_test):
    assert digits_train.images.shape[1:] == (1, 8, 8) and len(digits_train) + len(digits_test) == 1797
    again = load_dataset("digits", "train")
    assert torch.equal(again.images, digits_train.images)
    assert abs(float(digits_train.images.mean())) < 1e-3 and abs(float(digits_train.images.std()) - 1) < 1e-2
    train_rows = {tuple(r) for r in digits_train.images.flatten(1).tolist()}
    overlap = sum(tuple(r) in train_rows for r in digits_test.images.flatten(1).tolist())
    assert overlap < 5  # the raw digits data has a few exact duplicates, nothing more
    assert (digits_train.class_counts() > 130).all()


def test_unknown_dataset_suggests_closest():
    with pytest.raises(UnknownNameError, match="Did you mean 'mnist'"):
        load_dataset("mnits")


def test_missing_dataset_names_the_path_and_the_flag(tmp_path: Path):
    with pytest.raises(DataError) as err:
        load_dataset("fashionmnist", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "--download" in msg and "FashionMNIST" in msg


def test_nonexistent_data_root_is_an_error(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", root=tmp_path / "missing")


def _write_tree(root: Path, classes: list[str], per_class: int, size: int, mode: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            shape = (size, size) if mode == "L" else (size, size, 3)
            arr = np.clip(rng.normal(20 * i, 30, shape), 0, 255).astype(np.uint8)
            Image.fromarray(arr, mode).save(root / name / f"{j:03d}.png")


def test_named_dataset_falls_back_to_image_folder_with_its_class_order(tmp_path: Path):
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for split in ("train", "test"):
        _write_tree(tmp_path / "cifar10" / split, names, 3, 32, "RGB", seed=len(split))
    train, test = load_splits("cifar10", root=tmp_path)
    assert train.images.shape == (30, 3, 32, 32) and test.images.shape == (30, 3, 32, 32)
    assert train.spec.mean == (0.4914, 0.4822, 0.4465) and train.spec.class_names[0] == "airplane"
    assert train.labels.tolist() == [c for c in range(10) for _ in range(3)]
    pixel = np.asarray(Image.open(tmp_path / "cifar10/train/bird/000.png"), dtype=np.float32) / 255
    expected = (pixel[0, 0] - np.array(train.spec.mean)) / np.array(train.spec.std)
    assert np.allclose(train.images[6, :, 0, 0].numpy(), expected, atol=1e-5)


def test_custom_image_folder_single_tree_is_split_and_its_stats_recorded(tmp_path: Path):
    _write_tree(tmp_path / "mine", ["a", "b", "c"], 10, 12, "L")
    train, test = load_splits(f"imagefolder:{tmp_path / 'mine'}")
    assert train.spec.channels == 1 and train.spec.shape == (1, 12, 12) and train.spec.class_names == ("a", "b", "c")
    assert len(train) == 24 and len(test) == 6
    assert train.spec.name.startswith("imagefolder:/") and train.spec.mean[0] > 0
    assert abs(float(train.images.mean())) < 0.05  # normalised with its own statistics


def test_custom_npz(tmp_path: Path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 255, (40, 10, 10, 3), dtype=np.uint8),
             y_train=np.arange(40) % 4, x_test=rng.integers(0, 255, (8, 10, 10, 3), dtype=np.uint8),
             y_test=np.arange(8) % 4)
    train, test = load_splits(f"npz:{tmp_path / 'd.npz'}")
    assert train.images.shape == (40, 3, 10, 10) and test.spec.num_classes == 4
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="lacks y_train"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")


def _age(folder: Path, seconds: float) -> None:
    """Date every file under ``folder`` ``seconds`` into the past."""
    then = time.time() - seconds
    for path in folder.rglob("*.png"):
        os.utime(path, (then, then))


def test_image_folder_cache_is_used_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _write_tree(tmp_path / "mine", ["a", "b"], 5, 9, "L")
    _age(tmp_path / "mine", 3600)
    first = load_dataset(f"imagefolder:{tmp_path / 'mine'}")
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 1
    again = load_dataset(f"imagefolder:{tmp_path / 'mine'}")
    assert torch.equal(first.images, again.images)
    for path in (tmp_path / "mine/a").iterdir():  # all of a class: any one file may be in the test split
        Image.fromarray(np.full((9, 9), 255, np.uint8), "L").save(path)
    changed = load_dataset(f"imagefolder:{tmp_path / 'mine'}")
    assert not torch.equal(first.images, changed.images)


def test_image_folder_files_changed_just_now_are_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # a rewrite inside one timestamp tick keeps size and mtime: such files must be decoded again
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _write_tree(tmp_path / "mine", ["a", "b"], 5, 9, "L")
    first = load_dataset(f"imagefolder:{tmp_path / 'mine'}")
    assert not list((tmp_path / "cache").rglob("*.safetensors"))
    for path in (tmp_path / "mine/a").iterdir():
        stat = path.stat()
        Image.fromarray(np.full((9, 9), 255, np.uint8), "L").save(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = load_dataset(f"imagefolder:{tmp_path / 'mine'}")
    assert not torch.equal(first.images, changed.images)


def test_spec_round_trip():
    spec = dataset_spec("mnist")
    assert spec.shape == (1, 28, 28) and spec.mean == (0.1307,)
    assert type(spec).from_dict(spec.to_dict()) == spec


@pytest.mark.slow
def test_real_mnist_and_cifar10(real_data_root: Path):
    train, test = load_splits("mnist", root=real_data_root)
    assert len(train) == 60000 and len(test) == 10000
    assert train.class_counts().tolist()[:3] == [5923, 6742, 5958]
    cifar = load_dataset("cifar10", "test", root=real_data_root)
    assert cifar.images.shape == (10000, 3, 32, 32) and cifar.class_counts().tolist() == [1000] * 10
    # class-major, official order within a class: the first cat is official test image 0
    first_cat = cifar.spec.denormalize(cifar.images[3000:3001])[0, 0, 0, :9] * 255
    assert first_cat.round().tolist() == [158, 159, 165, 166, 160, 156, 162, 159, 158]


@pytest.mark.parametrize("name, classes, size, mode", [("svhn", 10, 32, "RGB"), ("cifar100", 100, 32, "RGB"),
                                                       ("fashionmnist", 10, 28, "L"), ("kmnist", 10, 28, "L")])
def test_stand_in_trees_for_datasets_not_shipped(tmp_path: Path, name, classes, size, mode):
    """torchvision checks these archives' checksums, so stand-ins use the ImageFolder layout."""
    names = [f"{i:03d}" for i in range(classes)]
    for split in ("train", "test"):
        _write_tree(tmp_path / name / split, names, 1, size, mode)
    train, test = load_splits(name, root=tmp_path)
    assert train.images.shape == (classes, 1 if mode == "L" else 3, size, size)
    assert train.labels.tolist() == list(range(classes)) and test.spec == train.spec


def test_gtsrb_stand_in_in_torchvision_layout(tmp_path: Path):
    rng = np.random.default_rng(0)
    base = tmp_path / "gtsrb"
    for c in range(3):
        folder = base / "GTSRB" / "Training" / f"{c:05d}"
        folder.mkdir(parents=True)
        for j in range(2):
            Image.fromarray(rng.integers(0, 255, (40 + j, 37, 3), dtype=np.uint8)).save(folder / f"{j}.ppm")
    test_dir = base / "GTSRB" / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for j in range(4):
        Image.fromarray(rng.integers(0, 255, (30, 33, 3), dtype=np.uint8)).save(test_dir / f"{j:05d}.ppm")
        rows.append(f"{j:05d}.ppm;33;30;0;0;33;30;{j % 3}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    train, test = load_splits("gtsrb", root=tmp_path)
    assert train.images.shape == (6, 3, 32, 32) and test.labels.tolist() == [0, 1, 2, 0]
    assert train.spec.num_classes == 43 and len(train.spec.mean) == 3  # statistics computed from train


@pytest.mark.slow
def test_real_usps_test_split(real_data_root: Path):
    spec = dataset_spec("mnist")
    usps_spec = type(spec)("usps", 1, 16, 16, 10, spec.class_names, spec.mean, spec.std)
    usps = load_dataset("usps", "test", root=real_data_root, spec=usps_spec)
    assert len(usps) == 2007 and usps.class_counts().tolist()[:3] == [359, 264, 198]


def test_missing_usps_files_get_the_clear_error(tmp_path):
    with pytest.raises(DataError, match="dataset 'usps' .train split. was not found"):
        load_dataset("usps", "train", root=tmp_path)


def test_nan_pixels_from_any_reader_fail_the_range_check(monkeypatch: pytest.MonkeyPatch):
    pixels = torch.rand(20, 1, 8, 8)
    pixels[4, 0, 3, 3] = float("nan")
    monkeypatch.setattr("securedd.data.datasets._read_digits", lambda split: (pixels, torch.arange(20) % 10))
    with pytest.raises(DataError, match="the train pixels of dataset 'digits' must be .* in \\[0, 1\\].* 1 NaN"):
        load_dataset("digits", "train")


@pytest.mark.parametrize(
    "mean, std, words",
    [((0.5,), (0.0,), "std finite and > 0"), ((0.5,), (-0.2,), "std finite and > 0"),
     ((float("nan"),), (0.3,), "mean must be finite"), ((0.5,), (float("inf"),), "std finite"),
     ((0.5, 0.5), (0.3, 0.3), "one value per channel \\(1\\); got 2 and 2")],
)
def test_a_spec_that_cannot_normalise_cannot_be_built(mean, std, words):
    values = dataset_spec("digits").to_dict() | {"mean": list(mean), "std": list(std)}
    with pytest.raises(DataError, match=words):
        type(dataset_spec("digits")).from_dict(values)
