"""SecDD target keys: random seeds, owner-only files, clear errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import torch

from securedd.errors import ConfigError, UnknownNameError
from securedd.secure.keys import TargetKey, load_key, new_key, save_key


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
