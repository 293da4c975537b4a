"""The federation's server: refusals, the minimum of clients, checkpoint and resume; one Flower run."""

from __future__ import annotations

import pytest
import torch

from securedd.artifacts import load_artifact
from securedd.config import RunConfig, apply_overrides
from securedd.defences import make_defence
from securedd.errors import ConfigError
from securedd.federated.apps import FederationSettings, Reply, client_train, run_in_process, run_server


def _settings(tmp_path, **kw) -> FederationSettings:
    cfg = apply_overrides(RunConfig(), ["data.name=digits", "method.name=dc", "method.ipc=1", "model=convnet_tiny",
                                        "seed=0", "method.outer_loop=2", "method.inner_loop=1"])
    return FederationSettings(cfg, **{"clients": 3, "rounds": 2, "out": str(tmp_path / "fed.safetensors"),
                                      "progress": False, **kw})


def _honest(images, record, clients=3):
    replies = []
    for node in range(clients):
        new, metrics = client_train({"images": images, "config": record}, node)
        replies.append(Reply(node, new, metrics["num-examples"], metrics["loss"]))
    return replies


def test_bad_replies_are_refused_and_logged_never_averaged(tmp_path, caplog):
    def exchange(images, record):
        replies = _honest(images, record)
        replies[1] = Reply(1, torch.full_like(images, float("nan")), 100.0, 0.0)
        replies.append(Reply(9, images[:3], 100.0, 0.0))
        replies.append(Reply(7, error="error: node crashed"))
        return 5, replies

    art = run_server(_settings(tmp_path), exchange)
    assert torch.isfinite(art.images).all()
    history = art.metadata["info"]["federated"]["history"]
    assert [h["accepted"] for h in history] == [2, 2] and [h["clients"] for h in history] == [5, 5]
    assert "NaN or Inf" in caplog.text and "shape" in caplog.text and "node crashed" in caplog.text


def test_too_few_replies_stop_with_the_checkpoint_and_a_restart_resumes(tmp_path):
    settings = _settings(tmp_path, rounds=3, quorum=2, patience=1)
    calls = []

    def flaky(images, record):
        calls.append(record["round"])
        replies = _honest(images, record)
        return 3, replies if record["round"] != 1 else replies[:1]

    with pytest.raises(ConfigError, match="without a quorum of 2"):
        run_server(settings, flaky)
    assert settings.checkpoint.is_file() and calls == [0, 1]
    resumed = run_server(settings, lambda images, record: (calls.append(record["round"]) or 3,
                                                           _honest(images, record)))
    assert calls == [0, 1, 1, 2]  # round 0 was not run again
    straight = run_server(_settings(tmp_path / "b", rounds=3), lambda im, rec: (3, _honest(im, rec)))
    assert torch.equal(resumed.images, straight.images)  # the same set as an uninterrupted run


def test_the_order_replies_arrive_in_does_not_change_a_bit_of_the_set(tmp_path):
    orders = iter([[2, 0, 1], [1, 2, 0], [0, 2, 1]])

    def shuffled(images, record):
        replies = _honest(images, record)
        return 3, [replies[i] for i in next(orders)]

    mixed = run_server(_settings(tmp_path / "a", rounds=3, aggregator="fedavg"), shuffled)
    straight = run_server(_settings(tmp_path / "b", rounds=3, aggregator="fedavg"), lambda im, rec: (3, _honest(im, rec)))
    assert mixed.sha256 == straight.sha256 and torch.equal(mixed.images, straight.images)
    assert not (tmp_path / "a" / "fed.server.pt").exists()  # a finished federation leaves its artifact alone


def test_privacy_ledger_reaches_the_artifact(tmp_path):
    settings = _settings(tmp_path, rounds=1, defence=make_defence("localdp-gaussian", clip=1.0, noise_multiplier=1.0))
    art = run_server(settings, lambda im, rec: (3, _honest(im, rec)))
    ledger = load_artifact(art.path).metadata["privacy"]
    assert ledger["mechanism"] == "gaussian" and ledger["rounds"] == 1 and ledger["epsilon"] > 0
    art = run_server(_settings(tmp_path / "r", rounds=1, defence=make_defence("ldpo-rld")),
                     lambda im, rec: (3, _honest(im, rec)))
    assert art.metadata["privacy"] == {"mechanism": "ldpo-rld", "rounds": 1}  # no epsilon for a heuristic


@pytest.mark.fl
def test_flower_simulation_engine_runs_the_apps(tmp_path):
    pytest.importorskip("flwr")
    from securedd.federated.apps import run_federation

    art = run_federation(_settings(tmp_path, clients=2, rounds=1))
    history = art.metadata["info"]["federated"]["history"]
    assert history == [{"round": 0, "clients": 2, "accepted": 2, "loss": pytest.approx(history[0]["loss"])}]
    assert art.method == "sfdd-dc" and art.images.shape == (10, 1, 8, 8)
    local = run_in_process(_settings(tmp_path / "local", clients=2, rounds=1))
    # the engine moves the messages and changes nothing else: the clients compute with the same pinned
    # thread count in Flower's processes as here, and the server sorts the replies, so not a bit differs
    assert art.sha256 == local.sha256 and torch.equal(art.images, local.images)


def test_a_hundred_round_gaussian_run_reports_the_reference_epsilon(tmp_path):
    settings = _settings(tmp_path, clients=5, rounds=100, defence=make_defence("localdp-gaussian", clip=1.0,
                                                                               noise_multiplier=1.0))
    # the ledger counts the server's rounds; the clients' noise is tested in test_client.py, so they answer at once
    art = run_server(settings, lambda images, record: (5, [Reply(n, images + 0.01, 1.0, 0.0) for n in range(5)]))
    ledger = load_artifact(art.path).metadata["privacy"]
    assert ledger["mechanism"] == "gaussian" and ledger["rounds"] == 100 and ledger["delta"] == 1e-5
    assert ledger["epsilon"] == pytest.approx(96.1, rel=0.05)  # RDP; REFERENCE section 4
    assert len(art.metadata["info"]["federated"]["history"]) == 100


def test_server_momentum_accumulates_the_rounds_steps(tmp_path):
    def step(images, record):  # every client moves the set by +1
        return 3, [Reply(node, images + 1, 1.0, 0.0) for node in range(3)]

    plain = run_server(_settings(tmp_path / "plain", rounds=2), step)
    moving = run_server(_settings(tmp_path / "m", rounds=2, server_momentum=0.5), step)
    start = moving.images - 2.5  # FedAvgM: +1, then +(0.5 * 1 + 1)
    torch.testing.assert_close(plain.images, start + 2)
    with pytest.raises(ConfigError, match="server_momentum"):
        _settings(tmp_path, server_momentum=1.0)
