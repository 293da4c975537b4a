"""The SFDD server's leakage attack: its replica of the worker's round, its metrics, LDPO-RLD's effect."""

from __future__ import annotations

import json

import pytest
import torch

from securedd.cli.main import main
from securedd.config import RunConfig, apply_overrides
from securedd.data import load_dataset
from securedd.defences import make_defence
from securedd.distill.synthetic import class_labels
from securedd.errors import ConfigError
from securedd.federated.leakage import LeakageSettings, emulated_step, leakage_attack, observe_round, psnr, standardised_mse


def _config(*extra: str):
    return apply_overrides(RunConfig(), ["data.name=digits", "method.name=dc", "method.ipc=1", "model=mlp", "seed=0",
                                         "method.outer_loop=1", "method.batch_real=1", "method.compile=false", *extra])


@pytest.fixture(scope="module")
def shard():
    train = load_dataset("digits", "train")
    return train.subset(torch.arange(0, len(train), 3))


def _sent(spec):
    return torch.randn((10, *spec.shape), generator=torch.Generator().manual_seed(1)), class_labels(10, 1)


def test_the_servers_replica_of_the_round_reproduces_the_workers_update(shard):
    sent, labels = _sent(shard.spec)
    seen = observe_round(_config(), shard, sent, labels, client=2, round_=3)
    assert [len(b) for b in seen.real] == [1] * 10
    targets = [torch.full((1,), c) for c in range(10)]
    step = emulated_step(seen.net, seen.sent, labels, seen.real, targets, seen.distance)
    torch.testing.assert_close(-seen.lr_img * step, seen.returned - seen.sent, rtol=1e-4, atol=1e-6)


def test_metrics_read_two_for_unrelated_batches_and_zero_for_a_copy():
    a, b = torch.randn(64, 1, 8, 8), torch.randn(64, 1, 8, 8)
    assert standardised_mse(a, a) == pytest.approx(0, abs=1e-9)
    assert standardised_mse(a, b) == pytest.approx(2, abs=0.2)
    assert psnr(a.sigmoid(), a.sigmoid()) > 100 > psnr(a.sigmoid(), b.sigmoid())


@pytest.mark.parametrize(("draw", "factor"), [("image", 3.0), ("class", 1.5)])
def test_ldpo_rld_keeps_the_server_from_reconstructing_the_batch(shard, draw, factor):
    """Per-image draws hide the batch (MSE over 3x); the paper's per-class draws less so on digits."""
    torch.set_num_threads(1)  # thousands of tiny triple-backward passes: threads only add waiting
    sent, labels = _sent(shard.spec)
    settings = LeakageSettings(iterations=8)
    plain = leakage_attack(observe_round(_config(), shard, sent, labels), shard.spec, settings, progress=False)
    guarded = leakage_attack(observe_round(_config(), shard, sent, labels, defence=make_defence("ldpo-rld", draw=draw)),
                             shard.spec, settings, progress=False)
    assert plain.mse < 0.8 and plain.ssim > 0.5  # the undefended round gives the batch away
    assert guarded.mse > factor * plain.mse and guarded.psnr < plain.psnr


def test_rounds_of_several_matching_steps_are_refused_with_the_fix(shard):
    sent, labels = _sent(shard.spec)
    with pytest.raises(ConfigError, match="method.outer_loop=1"):
        observe_round(_config("method.outer_loop=2"), shard, sent, labels)


def test_cli_writes_the_metrics_and_the_picture(tmp_path):
    out = tmp_path / "leak.json"
    assert main(["attack", "leakage", "--dataset", "digits", "--model", "mlp", "--iterations", "2", "--learn-labels",
                 "--json", str(out), "--grid", str(tmp_path / "leak.png"), "-q"]) == 0
    found = json.loads(out.read_text())
    assert found["images"] == 10 and 0 <= found["label_accuracy"] <= 1 and found["model"] == "mlp"
    assert (tmp_path / "leak.png").stat().st_size > 1000
