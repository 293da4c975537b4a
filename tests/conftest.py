"""Shared fixtures: tiny offline data only (``digits``); real datasets via $SECUREDD_DATA for slow tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from securedd.data import load_dataset
from securedd.data.spec import RealData


@pytest.fixture(scope="session")
def digits_train() -> RealData:
    return load_dataset("digits", "train")


@pytest.fixture(scope="session")
def digits_test(digits_train: RealData) -> RealData:
    return load_dataset("digits", "test", spec=digits_train.spec)


@pytest.fixture(scope="session")
def train_small_convnet(digits_train: RealData) -> Callable[..., torch.nn.Module]:
    """``train(**settings)``: a seed-0 ConvNet-3 trained 3 epochs with DSA on 40 digits images,
    ``settings`` (e.g. ``compile=True``, ``precision="bf16"``) over those :class:`TrainSettings`."""
    from securedd.models import create_model
    from securedd.training import TrainSettings, train_model

    images, labels = digits_train.images[:40], digits_train.labels[:40]

    def train(**settings: object) -> torch.nn.Module:
        gen = torch.Generator().manual_seed(0)
        model = create_model("convnet", (1, 8, 8), 10, generator=gen)
        options = TrainSettings(epochs=3, dsa_strategy="color_crop_cutout_scale_rotate", **settings)  # type: ignore[arg-type]
        return train_model(model, images, labels, options, gen)

    return train


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    root = os.environ.get("SECUREDD_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("set SECUREDD_DATA to the datasets folder to run this test")
    return Path(root)
