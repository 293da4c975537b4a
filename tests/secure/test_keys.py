"""SecDD target keys: random seeds, owner-only files, clear errors."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
import torch

from securedd.errors import ConfigError, UnknownNameError
from securedd.secure.keys import KEY_FORMAT, TargetKey, load_key, new_key, save_key
from securedd.secure.signing import generate_signing_keys, load_private_key


def test_new_keys_draw_fresh_seeds_and_rebuild_the_same_network(tmp_path: Path):
    a, b = new_key("lenet"), new_key("lenet")
    assert a.seed != b.seed and 0 <= a.seed < 2**63
    path = save_key(a, tmp_path / "k.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(path)
    assert key == a
    n1, n2 = key.network((1, 28, 28), 10), a.network((1, 28, 28), 10)
    assert all(torch.equal(p, q) for p, q in zip(n1.parameters(), n2.parameters(), strict=True))
    other = TargetKey("lenet", a.seed + 1, a.init_scheme).network((1, 28, 28), 10)
    assert not torch.equal(next(other.parameters()), next(n1.parameters()))


def test_bad_keys_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="no key file"):
        load_key(tmp_path / "missing.key")
    (tmp_path / "bad.key").write_text('{"model": "lenet"}')
    with pytest.raises(ConfigError, match="not a securedd target key"):
        load_key(tmp_path / "bad.key")
    with pytest.raises(UnknownNameError):
        new_key("lenett")


def _spy_modes(monkeypatch) -> list[int]:
    """The mode of every file at its first fsync: what it was while its secret bytes were written."""
    modes: list[int] = []
    fsync = os.fsync

    def spy(fd):
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return modes


def test_key_files_are_owner_only_from_the_first_byte(tmp_path: Path, monkeypatch):
    modes = _spy_modes(monkeypatch)
    path = tmp_path / "k.key"
    path.write_text("old")
    path.chmod(0o644)
    save_key(new_key("lenet"), path)
    assert modes[0] == 0o600 and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_private_signing_keys_are_owner_only_from_the_first_byte(tmp_path: Path, monkeypatch):
    modes = _spy_modes(monkeypatch)
    private, public = generate_signing_keys(tmp_path / "sender")
    assert modes[0] == 0o600 and stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) & 0o044  # the public key stays readable


def test_a_key_others_can_read_loads_with_a_warning(tmp_path: Path, caplog):
    path = save_key(new_key("lenet"), tmp_path / "k.key")
    with caplog.at_level(logging.WARNING, logger="securedd"):
        load_key(path)
    assert not caplog.records
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="securedd"):
        load_key(path)
    assert "readable or writable by others (mode 644)" in caplog.text and f"chmod 600 {path}" in caplog.text
    private, _ = generate_signing_keys(tmp_path / "sender")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="securedd"):
        load_private_key(private)
    assert not caplog.records
    private.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="securedd"):
        load_private_key(private)
    assert "private signing key" in caplog.text and "mode 640" in caplog.text


@pytest.mark.parametrize("seed", [-1, 2**63, 10**30, 1.5, "12", True, None])
def test_seeds_outside_the_keys_range_are_refused(tmp_path: Path, seed):
    path = tmp_path / "k.key"
    path.write_text(json.dumps({"format": KEY_FORMAT, "model": "lenet", "seed": seed, "init_scheme": "xavier"}))
    with pytest.raises(ConfigError, match=r"seed must be a whole number from 0 to 2\*\*63 - 1"):
        load_key(path)
    if isinstance(seed, int):
        with pytest.raises(ConfigError, match="2\\*\\*63 - 1"):
            save_key(TargetKey("lenet", seed), tmp_path / "new.key")
        assert not (tmp_path / "new.key").exists()


def test_the_range_ends_are_valid_seeds(tmp_path: Path):
    for seed in (0, 2**63 - 1):
        assert load_key(save_key(TargetKey("lenet", seed), tmp_path / "k.key")).seed == seed
