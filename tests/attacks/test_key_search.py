"""The key-search attack and the resemblance measures, on a small SecDD set of digits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from securedd.api import distill
from securedd.attacks.key_search import (
    SECONDS_PER_YEAR,
    candidate_keys,
    expected_search_years,
    key_search,
    key_space,
    replay_key,
    resemblance,
)
from securedd.cli.main import main
from securedd.config import RunConfig, apply_overrides
from securedd.errors import ConfigError, MismatchError
from securedd.secure.keys import TargetKey, load_key


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory, digits_train):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("secdd")
    cfg = apply_overrides(RunConfig(), [
        "method.name=secdd", "data.name=digits", "model=convnet_tiny", "method.ipc=1", "method.iterations=150",
        "method.batch_real=200", f"method.key='{folder / 'target.key'}'", "method.mode=learn", "method.lr=0.05",
        "method.lr_init=0.3", "seed=2"])
    out = folder / "secret.safetensors"
    art = distill(cfg, out=out, real=digits_train, progress=False)
    return art, load_key(folder / "target.key"), out


def test_candidate_keys_cover_every_architecture_within_the_budget():
    keys = candidate_keys(["a", "b", "c"], seeds_per_model=5, budget=7, seed=1, schemes=("xavier", "default"))
    assert len(keys) == 7 and len({k.seed for k in keys}) == 7
    assert {k.model for k in keys[:6]} == {"a", "b", "c"}
    assert candidate_keys(["a"], 2, 10, seed=1) == candidate_keys(["a"], 2, 10, seed=1)


def test_key_search_falls_short_of_the_key_holder(secret, digits_test):
    art, key, _ = secret
    keys = candidate_keys(["convnet_tiny", "mlp", "lenet"], seeds_per_model=2, budget=6)
    report = key_search(art, digits_test, keys, true_key=key)
    assert len(report.candidates) == 6 and report.key_accuracy is not None
    assert report.key_accuracy > report.pick.accuracy + 15  # the key is random: a wide margin
    assert report.best.accuracy >= report.pick.accuracy
    assert set(report.by_model()) == {"convnet_tiny", "mlp", "lenet"}


def test_the_curve_follows_the_pick_and_the_best_so_far(secret, digits_test):
    art, _, _ = secret
    report = key_search(art, digits_test, candidate_keys(["convnet_tiny", "mlp"], seeds_per_model=3, budget=5))
    curve = report.curve()
    assert [row["tried"] for row in curve] == [1, 2, 3, 4, 5]
    assert curve[-1]["pick_accuracy"] == report.pick.accuracy and curve[-1]["best_accuracy"] == report.best.accuracy
    for k, row in enumerate(curve):
        seen = report.candidates[: k + 1]
        assert row["best_accuracy"] == max(c.accuracy for c in seen)
        assert row["pick_accuracy"] == min(seen, key=lambda c: c.self_loss).accuracy
    assert report.seconds_per_key is not None and report.seconds_per_key > 0


def test_key_space_and_the_expected_search_time():
    assert key_space(1, 1) == 2**63 and key_space(3, 2) == 6 * 2**63
    assert expected_search_years(2**63, 1.0) == pytest.approx((2**63 + 1) / 2 / SECONDS_PER_YEAR)
    assert expected_search_years(1, SECONDS_PER_YEAR) == 1.0  # the one key is found on the first try
    with pytest.raises(ConfigError, match="seconds_per_key > 0"):
        expected_search_years(10, 0.0)
    with pytest.raises(ConfigError, match=">= 1 architecture"):
        key_space(0, 2)


def test_the_key_holder_is_one_replay(secret, digits_test):
    art, key, _ = secret
    assert replay_key(art, key, digits_test).accuracy > 45


def test_resemblance_finds_the_nearest_training_image(secret, digits_train):
    art, _, _ = secret
    look = resemblance(art, digits_train)
    assert len(look["ssim"]) == len(look["distance"]) == 10
    assert all(-1 <= s <= 1 for s in look["ssim"]) and all(d > 0 for d in look["distance"])
    # a training image is its own nearest neighbour, at distance 0 and SSIM 1
    copy = dataclasses.replace(art, images=digits_train.images[:10])
    own = resemblance(copy, digits_train)
    assert max(own["distance"]) < 1e-4 and min(own["ssim"]) > 0.999


def test_non_replay_artifacts_are_refused(digits_train, digits_test):
    cfg = apply_overrides(RunConfig(), ["method.name=random", "data.name=digits", "method.ipc=1"])
    art = distill(cfg, real=digits_train, progress=False)
    with pytest.raises(MismatchError, match="no learned GD schedule"):
        replay_key(art, TargetKey("convnet_tiny", 1), digits_test)


def test_cli_key_search_writes_report_and_grid(secret, tmp_path: Path, capsys):
    _, _, path = secret
    code = main(["attack", "key-search", str(path), "--models", "convnet_tiny,mlp", "--budget", "4", "--key",
                 str(path.parent / "target.key"), "--json", str(tmp_path / "a.json"), "--grid",
                 str(tmp_path / "n.png"), "--curve", str(tmp_path / "c.png"), "-q"])
    out = capsys.readouterr().out
    assert code == 0 and "adversary's pick" in out and "key holder" in out and "SSIM" in out
    assert "key space searched: 3.69e+19 keys" in out and "CPU-years" in out  # 2 models x 2 schemes x 2**63
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((tmp_path / "a.json").read_text())
    assert len(report["candidates"]) == 4 and report["key_accuracy"] > report["pick"]["accuracy"]
    assert report["seconds_per_key"] > 0
    assert (tmp_path / "n.png").read_bytes()[:4] == b"\x89PNG"
