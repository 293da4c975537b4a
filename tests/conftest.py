"""Shared fixtures: tiny offline data only (``digits``); real datasets via $SECUREDD_DATA for slow tests."""

from __future__ import annotations

import os
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
