"""The federation's server: refusals, the minimum of clients, checkpoint and resume; one Flower run."""

from __future__ import annotations

import pytest
import torch

from securedd.artifacts import load_artifact
from securedd.config import RunConfig, apply_overrides
from securedd.defences import make_defence
from securedd.errors import ConfigError
from securedd.federated.apps import answer, run_in_process
from securedd.federated.server import Reply, reply_echo, run_server
from securedd.federated.settings import FederationSettings


def _settings(tmp_path, **kw) -> FederationSettings:
    cfg = apply_overrides(RunConfig(), ["data.name=digits", "method.name=dc", "method.ipc=1", "model=convnet_tiny",
                                        "seed=0", "method.outer_loop=2", "method.inner_loop=1"])
    return FederationSettings(cfg, **{"clients": 3, "rounds": 2, "out": str(tmp_path / "fed.safetensors"),
                                      "progress": False, **kw})


def _honest(images, record, clients=3):
    return [answer(node, images, record) for node in range(clients)]


def test_bad_replies_are_refused_and_logged_never_averaged(tmp_path, caplog):
    def exchange(images, record):
        replies = _honest(images, record)
        replies[1] = Reply(1, torch.full_like(images, float("nan")), 100.0, 0.0, **reply_echo(images, record))
        replies.append(Reply(3, images[:3], 100.0, 0.0, **reply_echo(images, record)))
        replies.append(Reply(4, error="error: node crashed"))
        return range(5), replies

    art = run_server(_settings(tmp_path), exchange)
    assert torch.isfinite(art.images).all()
    history = art.metadata["info"]["federated"]["history"]
    assert [h["accepted"] for h in history] == [2, 2] and [h["clients"] for h in history] == [5, 5]
    assert "NaN or Inf" in caplog.text and "shape" in caplog.text and "node crashed" in caplog.text
    assert [d["node"] for d in history[0]["dropped"]] == [4, 1, 3]  # who was dropped, and why, per round
    assert "node crashed" in history[0]["dropped"][0]["reason"]


def test_too_few_replies_stop_with_the_checkpoint_and_a_restart_resumes(tmp_path):
    settings = _settings(tmp_path, rounds=3, quorum=2, patience=1)
    calls = []

    def flaky(images, record):
        calls.append(record["round"])
        replies = _honest(images, record)
        return range(3), replies if record["round"] != 1 else replies[:1]

    with pytest.raises(ConfigError, match="without a quorum of 2"):
        run_server(settings, flaky)
    assert settings.checkpoint.is_file() and calls == [0, 1]
    resumed = run_server(settings, lambda images, record: (calls.append(record["round"]) or range(3),
                                                           _honest(images, record)))
    assert calls == [0, 1, 1, 2]  # round 0 was not run again
    straight = run_server(_settings(tmp_path / "b", rounds=3), lambda im, rec: (range(3), _honest(im, rec)))
    assert torch.equal(resumed.images, straight.images)  # the same set as an uninterrupted run


def test_the_order_replies_arrive_in_does_not_change_a_bit_of_the_set(tmp_path):
    orders = iter([[2, 0, 1], [1, 2, 0], [0, 2, 1]])

    def shuffled(images, record):
        replies = _honest(images, record)
        return range(3), [replies[i] for i in next(orders)]

    mixed = run_server(_settings(tmp_path / "a", rounds=3, aggregator="fedavg"), shuffled)
    straight = run_server(_settings(tmp_path / "b", rounds=3, aggregator="fedavg"), lambda im, rec: (range(3), _honest(im, rec)))
    assert mixed.sha256 == straight.sha256 and torch.equal(mixed.images, straight.images)
    assert not (tmp_path / "a" / "fed.server.pt").exists()  # a finished federation leaves its artifact alone


def test_privacy_ledger_reaches_the_artifact(tmp_path):
    settings = _settings(tmp_path, rounds=1, defence=make_defence("localdp-gaussian", clip=1.0, noise_multiplier=1.0))
    art = run_server(settings, lambda im, rec: (range(3), _honest(im, rec)))
    ledger = load_artifact(art.path).metadata["privacy"]
    assert ledger["mechanism"] == "gaussian" and ledger["rounds"] == 1 and ledger["epsilon"] > 0
    art = run_server(_settings(tmp_path / "r", rounds=1, defence=make_defence("ldpo-rld")),
                     lambda im, rec: (range(3), _honest(im, rec)))
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
    art = run_server(settings, lambda images, record: (range(5), [Reply(n, images + 0.01, 1.0, 0.0, **reply_echo(images, record))
                                                                  for n in range(5)]))
    ledger = load_artifact(art.path).metadata["privacy"]
    assert ledger["mechanism"] == "gaussian" and ledger["rounds"] == 100 and ledger["delta"] == 1e-5
    assert ledger["epsilon"] == pytest.approx(96.1, rel=0.05)  # RDP; REFERENCE section 4
    assert len(art.metadata["info"]["federated"]["history"]) == 100


def test_server_momentum_accumulates_the_rounds_steps(tmp_path):
    def step(images, record):  # every client moves the set by +1
        return range(3), [Reply(node, images + 1, 1.0, 0.0, **reply_echo(images, record)) for node in range(3)]

    plain = run_server(_settings(tmp_path / "plain", rounds=2), step)
    moving = run_server(_settings(tmp_path / "m", rounds=2, server_momentum=0.5), step)
    start = moving.images - 2.5  # FedAvgM: +1, then +(0.5 * 1 + 1)
    torch.testing.assert_close(plain.images, start + 2)
    with pytest.raises(ConfigError, match="server_momentum"):
        _settings(tmp_path, server_momentum=1.0)


def test_the_progress_line_shows_each_rounds_replies_time_and_epsilon(tmp_path, capsys):
    def one_nan(images, record):
        replies = _honest(images, record)
        replies[2] = Reply(2, torch.full_like(images, float("nan")), 1.0, 0.0, **reply_echo(images, record))
        return range(3), replies

    settings = _settings(tmp_path, rounds=1, progress=True,
                         defence=make_defence("localdp-gaussian", clip=1.0, noise_multiplier=1.0))
    art = run_server(settings, one_nan)
    line = capsys.readouterr().err
    epsilon = art.metadata["privacy"]["epsilon"]
    assert "used 2/3, dropped 1" in line and f"epsilon {epsilon:.3g}" in line, line


def test_a_class_is_averaged_over_the_clients_that_changed_it(tmp_path):
    from securedd.federated.server import _merge

    sent = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    replies = []
    for node in range(3):  # node 0 alone moves class 0 (its shard alone holds it); every node moves class 1
        new = sent.clone()
        new[1] += 1.0 + node
        if node == 0:
            new[0] += 3.0
        replies.append(Reply(node, new, 1.0, 0.0))
    for aggregator in ("mean", "median", "fedavg"):
        merged = _merge(_settings(tmp_path, aggregator=aggregator), replies, [1.0, 1.0, 1.0], sent)
        torch.testing.assert_close(merged[0], sent[0] + 3.0)  # not diluted to +1 by the two that lack it
        torch.testing.assert_close(merged[1], sent[1] + 2.0)
        assert torch.equal(merged[2:], sent[2:])  # nobody moved them


@pytest.mark.parametrize("method", ["dc", "dm"])
def test_a_pathological_split_federates_every_client_in_every_round(tmp_path, method):
    cfg = apply_overrides(RunConfig(), ["data.name=digits", f"method.name={method}", "method.ipc=1",
                                        "model=convnet_tiny", "seed=0"])
    art = run_in_process(FederationSettings(cfg, clients=5, rounds=2, split="pathological:2", progress=False,
                                            out=str(tmp_path / "fed.safetensors")))
    history = art.metadata["info"]["federated"]["history"]
    assert [h["accepted"] for h in history] == [5, 5] and "dropped" not in history[-1]
    assert art.metadata["info"]["federated"]["split"] == "pathological:2"
