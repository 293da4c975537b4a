"""The federated server trusts no client: forged counts, a non-finite aggregate, the quorum, resume checks.

The reproducers of the hardening review: a weight of 1e30 made FedAvg's aggregate exactly
the attacker's set; NaN, -800 or Inf made the global set NaN, which was then checkpointed
so that the run could neither finish nor resume; one bad reply stopped a run whose
minimum was every client.
"""

from __future__ import annotations

import logging

import pytest
import torch

from securedd.config import RunConfig, apply_overrides
from securedd.errors import ConfigError
from securedd.federated.apps import answer, client_shard
from securedd.federated.screening import ReplyPolicy
from securedd.federated.server import Reply, reply_echo, run_server
from securedd.federated.settings import FederationSettings


def _settings(tmp_path, **kw) -> FederationSettings:
    cfg = apply_overrides(RunConfig(), ["data.name=digits", "method.name=dm", "method.ipc=1", "model=convnet_tiny",
                                        "seed=0"])
    return FederationSettings(cfg, **{"clients": 3, "rounds": 3, "out": str(tmp_path / "fed.safetensors"),
                                      "progress": False, **kw})


def _honest(images, record, nodes=(0, 1, 2)):
    return [answer(node, images, record) for node in nodes]


def _forging(weight):
    def exchange(images, record):
        replies = _honest(images, record)
        replies[0].weight = weight
        return range(3), replies
    return exchange


@pytest.mark.parametrize("weight", [1e30, float("nan"), -800.0, float("inf")])
@pytest.mark.parametrize("aggregator", ["fedavg", "mean"])
def test_a_forged_example_count_is_refused_and_the_run_is_the_honest_clients_own(tmp_path, caplog, weight,
                                                                                 aggregator):
    attacked = run_server(_settings(tmp_path / "a", aggregator=aggregator), _forging(weight))
    without = run_server(_settings(tmp_path / "b", aggregator=aggregator),
                         lambda im, rec: (range(3), _honest(im, rec, nodes=(1, 2))))
    assert torch.isfinite(attacked.images).all()
    assert torch.equal(attacked.images, without.images)  # not the attacker's set, not NaN
    assert caplog.text.count("refused the reply of node 0: example count") == 3


def test_fedavg_counts_a_large_but_plausible_count_as_twice_the_median_at_most(tmp_path, caplog):
    settings = _settings(tmp_path, aggregator="fedavg", rounds=1)
    sizes = sorted(len(client_shard(settings.config, 3, "iid", n)) for n in range(3))
    art = run_server(settings, _forging(1e9))
    capped = run_server(_settings(tmp_path / "c", aggregator="fedavg", rounds=1), _forging(2.0 * sizes[1]))
    assert torch.equal(art.images, capped.images)
    assert "node 0 reported 1e+09 examples; counted as" in caplog.text


def test_a_non_finite_aggregate_is_never_taken_or_checkpointed(tmp_path, caplog):
    """Finite replies whose float32 sum overflows: the round keeps the set, the checkpoint stays finite."""
    settings = _settings(tmp_path, rounds=2, policy=ReplyPolicy(max_change=1e39), patience=5)

    def overflowing(images, record):
        if record["round"] == 0:
            return range(3), [Reply(n, images + 3e38, 1.0, 0.0, **reply_echo(images, record)) for n in range(3)]
        assert torch.isfinite(torch.load(settings.checkpoint, weights_only=True)["images"]).all()
        return range(3), _honest(images, record)

    art = run_server(settings, overflowing)
    history = art.metadata["info"]["federated"]["history"]
    assert history[0]["skipped"] and not history[1].get("skipped") and torch.isfinite(art.images).all()
    assert "the aggregate is not finite" in caplog.text


def test_one_bad_client_every_round_does_not_stop_the_federation_by_default(tmp_path, caplog):
    def one_bad(images, record):
        replies = _honest(images, record, nodes=(1, 2))
        return range(3), [Reply(0, torch.full_like(images, float("nan")), 1.0, 0.0, **reply_echo(images, record)),
                          *replies]

    art = run_server(_settings(tmp_path, rounds=4), one_bad)
    assert [h["accepted"] for h in art.metadata["info"]["federated"]["history"]] == [2, 2, 2, 2]
    assert caplog.text.count("refused the reply of node 0: NaN or Inf") == 4


def test_a_round_without_a_quorum_keeps_the_set_and_patience_bounds_the_streak(tmp_path, caplog):
    seen = []

    def sparse(images, record):
        seen.append(images.clone())
        replies = _honest(images, record)
        return range(3), replies if record["round"] != 1 else replies[:1]

    art = run_server(_settings(tmp_path, rounds=3), sparse)
    history = art.metadata["info"]["federated"]["history"]
    assert [h.get("skipped", False) for h in history] == [False, True, False]
    assert torch.equal(seen[1], seen[2])  # round 1 kept the set
    assert "fewer than the quorum of 2" in caplog.text
    with pytest.raises(ConfigError, match="2 rounds in a row without a quorum"):
        run_server(_settings(tmp_path / "b", rounds=4, patience=2), lambda im, rec: (range(3), _honest(im, rec)[:1]))


def test_a_resumed_checkpoint_must_be_this_runs_whole_and_finite(tmp_path):
    settings = _settings(tmp_path, rounds=2, quorum=3, patience=1)
    with pytest.raises(ConfigError):  # stops after round 0 with a checkpoint
        run_server(settings, lambda im, rec: (range(3), _honest(im, rec) if rec["round"] == 0 else []))
    good = settings.checkpoint.read_bytes()
    with pytest.raises(ConfigError, match="aggregator was 'mean', now 'median'"):
        run_server(_settings(tmp_path, rounds=2, aggregator="median"), lambda im, rec: (range(3), _honest(im, rec)))
    settings.checkpoint.write_bytes(good[: len(good) // 2])
    with pytest.raises(ConfigError, match="unreadable"):
        run_server(settings, lambda im, rec: (range(3), _honest(im, rec)))
    state = torch.load(__import__("io").BytesIO(good), weights_only=True)
    state["images"] = torch.full_like(state["images"], float("nan"))
    torch.save(state, settings.checkpoint)
    with pytest.raises(ConfigError, match="non-finite"):
        run_server(settings, lambda im, rec: (range(3), _honest(im, rec)))


def test_refusals_are_logged_at_warning_level(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    run_server(_settings(tmp_path, rounds=1), _forging(float("nan")))
    assert any(r.levelno == logging.WARNING and "node 0" in r.getMessage() for r in caplog.records)


def _misbehaving(kind):
    """An exchange where node 0 misbehaves in every round, in the way ``kind`` names; nodes 1 and 2 are honest."""
    first = {}

    def exchange(images, record):
        replies, echo = _honest(images, record, nodes=(1, 2)), reply_echo(images, record)
        honest = answer(0, images, record)
        first.setdefault("reply", honest)
        bad = {
            "nan": lambda: Reply(0, torch.full_like(images, float("nan")), honest.weight, 0.0, **echo),
            "inf": lambda: Reply(0, honest.images.index_fill(0, torch.tensor([0]), float("inf")), honest.weight, 0.0,
                                 **echo),
            "shape": lambda: Reply(0, honest.images[:-1], honest.weight, 0.0, **echo),
            "dtype": lambda: Reply(0, honest.images.double(), honest.weight, 0.0, **echo),
            "norm": lambda: Reply(0, images + 100 * (honest.images - images), honest.weight, 0.0, **echo),
            "replay": lambda: first["reply"],  # round 0's genuine reply, sent again in every later round
            "other-set": lambda: answer(0, images + 0.5, record),
            "crash": lambda: Reply(0, error="error: RuntimeError: killed mid-round"),
            "silent": lambda: None,  # never answers: the round's timeout passes without its reply
            "stranger": lambda: Reply(7, honest.images, honest.weight, 0.0, **echo),
            "twice": lambda: None,
        }[kind]()
        if kind == "twice":
            replies += [honest, Reply(0, honest.images + 0.01, honest.weight, 0.0, **echo)]
        elif bad is not None:
            replies.append(bad)
        return range(3), replies

    return exchange


REASONS = {"nan": "NaN or Inf", "inf": "NaN or Inf", "shape": "shape", "dtype": "dtype",
           "norm": "change", "replay": "answers round 0, not round", "other-set": "another set",
           "crash": "killed mid-round", "silent": "no reply", "stranger": "not asked", "twice": "2 replies from one node"}


@pytest.fixture(scope="module")
def without_node_0(tmp_path_factory):
    """The run in which node 0 never takes part, and the one in which it is honest in round 0 only."""
    tmp = tmp_path_factory.mktemp("without")
    never = run_server(_settings(tmp / "never"), lambda im, rec: (range(3), _honest(im, rec, nodes=(1, 2))))
    once = run_server(_settings(tmp / "once"),
                      lambda im, rec: (range(3), _honest(im, rec, nodes=(0, 1, 2) if rec["round"] == 0 else (1, 2))))
    return {"never": never, "once": once}


@pytest.mark.parametrize("kind", list(REASONS))
def test_a_misbehaving_client_is_dropped_logged_recorded_and_changes_nothing(tmp_path, caplog, kind,
                                                                              without_node_0):
    art = run_server(_settings(tmp_path), _misbehaving(kind))
    reference = without_node_0["once" if kind == "replay" else "never"]
    assert torch.equal(art.images, reference.images)  # the run without that client, bit for bit
    history = art.metadata["info"]["federated"]["history"]
    later = history[1:] if kind == "replay" else history  # round 0's replay is the genuine reply
    assert all(h["accepted"] == 2 for h in later)
    bad_node = 7 if kind == "stranger" else 0
    for entry in later:
        reasons = [d["reason"] for d in entry["dropped"] if d["node"] == bad_node]
        assert reasons and all(REASONS[kind] in r for r in reasons), entry
    assert f"refused the reply of node {bad_node}: " in caplog.text and REASONS[kind] in caplog.text
