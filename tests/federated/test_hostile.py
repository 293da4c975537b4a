"""A registered client that lies, over 20 rounds, under every aggregator: the run finishes and stays honest."""

from __future__ import annotations

import pytest
import torch

from securedd.config import RunConfig, apply_overrides
from securedd.errors import ConfigError
from securedd.federated.apps import answer, run_in_process
from securedd.federated.hostile import Hostile
from securedd.federated.screening import reply_change
from securedd.federated.server import run_server
from securedd.federated.settings import FederationSettings

ROUNDS = 20


def _settings(tmp_path, aggregator, hostile=None) -> FederationSettings:
    cfg = apply_overrides(RunConfig(), ["data.name=digits", "method.name=dm", "method.ipc=1", "model=convnet_tiny",
                                        "seed=0"])
    return FederationSettings(cfg, clients=3, rounds=ROUNDS, aggregator=aggregator, hostile=hostile,
                              out=str(tmp_path / f"{aggregator}-{hostile and hostile.kind}.safetensors"),
                              progress=False)


def _without_node_0(settings):
    return run_server(settings, lambda images, record: (range(3), [answer(n, images, record) for n in (1, 2)]))


@pytest.mark.parametrize("aggregator", ["mean", "fedavg", "median", "trimmed_mean"])
def test_forged_counts_and_the_escalating_range_attack_never_get_in(tmp_path, caplog, aggregator):
    reference = _without_node_0(_settings(tmp_path / "ref", aggregator))
    for hostile in (Hostile("weight", weight=1e30), Hostile("weight", weight=float("nan")), Hostile("range")):
        caplog.clear()
        art = run_in_process(_settings(tmp_path, aggregator, hostile))
        assert torch.equal(art.images, reference.images), hostile  # exactly the honest clients' set
        refused = [line for line in caplog.text.splitlines() if "refused the reply of node 0" in line]
        assert len(refused) == ROUNDS, hostile
        assert art.metadata["info"]["federated"]["hostile"]["kind"] == hostile.kind


@pytest.mark.parametrize("aggregator", ["mean", "median"])
def test_an_adaptive_client_at_the_cap_moves_the_set_by_a_bounded_amount(tmp_path, aggregator):
    honest = run_in_process(_settings(tmp_path / "h", aggregator))
    art = run_in_process(_settings(tmp_path, aggregator, Hostile("near-bound")))
    assert torch.isfinite(art.images).all()
    drift = reply_change(art.images, honest.images)
    assert drift < 1.0, drift  # at most ~0.05 a round, and never escalating


def test_hostile_settings_are_checked():
    with pytest.raises(ConfigError, match="hostile reply"):
        Hostile("sybil")
    with pytest.raises(ConfigError, match="workers"):
        Hostile("weight", workers=-1)
