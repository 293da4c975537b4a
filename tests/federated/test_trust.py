"""FLTrust on the server: trust by direction against the server's own update, norms bounded by its norm."""

from __future__ import annotations

import pytest
import torch

from securedd.config import RunConfig, apply_overrides
from securedd.errors import ConfigError
from securedd.federated.aggregate import aggregate
from securedd.federated.apps import answer
from securedd.federated.server import Reply, reply_echo, run_server, server_reference
from securedd.federated.settings import FederationSettings
from securedd.federated.trust import fltrust, trust_scores


def test_a_reply_against_the_reference_counts_for_nothing_and_norms_are_the_references():
    sent = torch.zeros(2, 1, 2, 2)
    reference = sent + torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]).view(2, 1, 2, 2)
    along = sent + 100 * (reference - sent)  # the right direction, 100 times as far
    against = sent - 5 * (reference - sent)
    new, trust = fltrust(sent, [along, against], reference)
    assert trust.tolist() == [1.0, 0.0]
    torch.testing.assert_close(new, reference)  # rescaled to the reference's norm; the other ignored
    kept, trust = fltrust(sent, [against], reference)
    assert torch.equal(kept, sent) and trust.tolist() == [0.0]  # nobody to trust: the set stays
    with pytest.raises(ConfigError, match="cannot be compared"):
        trust_scores([torch.ones(3)], torch.ones(4))
    with pytest.raises(ConfigError, match="no client replies"):
        fltrust(sent, [], reference)


def test_fltrust_is_the_servers_business_not_a_plain_aggregator(tmp_path):
    with pytest.raises(ConfigError, match="Valid aggregators"):
        aggregate("fltrust", [torch.zeros(2)], [1.0])
    assert _settings(tmp_path).aggregator == "fltrust"
    with pytest.raises(ConfigError, match="Valid aggregators: fedavg, mean, median, trimmed_mean, fltrust"):
        _settings(tmp_path, aggregator="krum")


def _settings(tmp_path, **kw) -> FederationSettings:
    cfg = apply_overrides(RunConfig(), ["data.name=digits", "method.name=dm", "method.ipc=1", "model=convnet_tiny",
                                        "seed=0"])
    return FederationSettings(cfg, **{"clients": 3, "rounds": 3, "aggregator": "fltrust", "trust_root": 5,
                                      "out": str(tmp_path / "fed.safetensors"), "progress": False, **kw})


def test_a_sign_flipping_client_gets_no_trust_and_the_run_is_the_honest_clients_own(tmp_path, caplog):
    def flipping(images, record):
        replies = [answer(n, images, record) for n in (1, 2)]
        honest = answer(0, images, record)
        flipped = images - (honest.images - images)  # the same size of change, the opposite way
        return range(3), [*replies, Reply(0, flipped, honest.weight, 0.0, **reply_echo(images, record))]

    attacked = run_server(_settings(tmp_path / "a"), flipping)
    without = run_server(_settings(tmp_path / "b"), lambda im, rec: (range(3), [answer(n, im, rec) for n in (1, 2)]))
    assert torch.equal(attacked.images, without.images)
    assert caplog.text.count("node 0's change points away from the server's own") == 3
    assert attacked.metadata["info"]["federated"]["trust_root"] == 5


def test_the_reference_is_the_servers_own_round_on_its_root_set(tmp_path):
    settings = _settings(tmp_path)
    sent = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    first, again = server_reference(settings, sent, 0), server_reference(settings, sent, 0)
    assert torch.equal(first, again) and not torch.equal(first, sent)  # deterministic, and it moves the set
    assert not torch.equal(server_reference(settings, sent, 1), first)  # a fresh draw each round
    with pytest.raises(ConfigError, match="trust_root must be >= 1"):
        _settings(tmp_path, trust_root=0)
    pytest.importorskip("flwr")
    import tomllib

    from securedd.federated.deploy import settings_from_run_config, write_app

    app = write_app(tmp_path / "app", settings)
    config = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    restored = settings_from_run_config(config)
    assert (restored.aggregator, restored.trust_root) == ("fltrust", 5)
