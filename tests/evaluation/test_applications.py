"""DD's applications: the poisoning metrics, the arms scored on held-out networks, and the commands."""

from __future__ import annotations

import json

import pytest
import torch

from securedd.api import distill
from securedd.cli.main import main
from securedd.config import RunConfig, apply_overrides
from securedd.data.spec import RealData
from securedd.errors import MismatchError
from securedd.evaluation.applications import FIXED_LRS, adaptation_report, poison_scores, poisoning_report
from securedd.training import replay_steps, score_model
from securedd.training.pool import load_pool, train_pool


class _Constant(torch.nn.Module):
    """Predicts ``cls`` for every image."""

    def __init__(self, cls: int, k: int = 10) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.nn.functional.one_hot(torch.tensor(cls), k).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


def test_poison_scores_follow_the_papers_definitions(digits_test: RealData):
    share_1 = float((digits_test.labels == 1).float().mean() * 100)
    share_0 = float((digits_test.labels == 0).float().mean() * 100)
    always_target = poison_scores(_Constant(1), digits_test, attacked=0, target=1)
    assert always_target["attacked_correct"] == 0 and always_target["attacked_as_target"] == 100
    # against the incorrect labels, class 0 counts as 1: predicting 1 everywhere is right on both classes
    assert always_target["accuracy_wrt_incorrect_labels"] == pytest.approx(share_0 + share_1, abs=1e-4)
    always_attacked = poison_scores(_Constant(0), digits_test, attacked=0, target=1)
    assert always_attacked["attacked_correct"] == 100 and always_attacked["accuracy_wrt_incorrect_labels"] == 0


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory, digits_train):
    return train_pool("convnet_tiny", digits_train, tmp_path_factory.mktemp("pool"), count=3, epochs=30, lr=0.05,
                      batch_size=64, progress=False)


def _poison_set(pool_dir, digits_train, iterations: int = 60):
    cfg = apply_overrides(RunConfig(), ["data.name=digits", "model=convnet_tiny", "method.name=dd", "method.ipc=1",
                                        "method.steps=1", "method.epochs=1", f"method.iterations={iterations}",
                                        "method.init=pool", f"method.pool='{pool_dir}'", "method.held_out=1",
                                        "method.relabel='0:1'", "method.lr=0.05", "method.lr_init=0.1", "method.batch_real=200",
                                        "seed=1"])
    return distill(cfg, real=digits_train, progress=False)


def test_poisoning_scores_every_arm_on_the_held_out_network(pool_dir, digits_train, digits_test):
    art = _poison_set(pool_dir, digits_train)
    report = poisoning_report(art, digits_test, digits_train, progress=False)
    arms = {a.name: a for a in report.arms}
    assert list(arms) == ["no attack", "distilled", "random real, learned lrs", "random real, best fixed lr"]
    assert all(len(a.per_network) == 1 for a in report.arms)  # held_out=1
    held_out = load_pool(pool_dir).network(2)
    assert arms["no attack"].per_network[0] == poison_scores(held_out, digits_test, 0, 1)
    assert arms["no attack"].mean("accuracy_wrt_incorrect_labels") > 70  # a well-trained network to attack
    replay_steps(held_out, art.images, art.labels, art.lrs, 1, 10)
    assert arms["distilled"].per_network[0] == poison_scores(held_out, digits_test, 0, 1)
    assert arms["random real, best fixed lr"].lr in FIXED_LRS
    # on a network it was distilled for, the one step turns class 0 into class 1 and keeps the rest
    seen = load_pool(pool_dir).network(0)
    before = poison_scores(seen, digits_test, 0, 1)
    replay_steps(seen, art.images, art.labels, art.lrs, 1, 10)
    after = poison_scores(seen, digits_test, 0, 1)
    assert before["attacked_as_target"] < 5 and after["attacked_as_target"] > 60
    assert after["accuracy_wrt_incorrect_labels"] > before["accuracy_wrt_incorrect_labels"] + 5
    data = report.to_dict()
    assert data["attack"] == [0, 1] and data["arms"]["distilled"]["attacked_as_target"]["values"]


def test_applications_refuse_sets_that_are_not_for_them(pool_dir, digits_train, digits_test):
    plain = distill(apply_overrides(RunConfig(), ["data.name=digits", "model=convnet_tiny", "method.name=dd",
                                                  "method.ipc=1", "method.iterations=2", "seed=1"]),
                    real=digits_train, progress=False)
    with pytest.raises(MismatchError, match="method.init=pool"):
        adaptation_report(plain, digits_test, digits_train, progress=False)
    with pytest.raises(MismatchError, match="method.relabel=K:T"):
        poisoning_report(plain, digits_test, digits_train, progress=False)


def test_adapt_command_distils_scores_and_writes_the_table(pool_dir, tmp_path, capsys):
    out = tmp_path / "adapt.safetensors"
    args = ["adapt", "--pool", str(pool_dir), "--target", "digits", "--ipc", "2", "--steps", "2", "--epochs", "1",
            "--held-out", "1", "--iterations", "5", "--out", str(out), "-q", "method.batch_real=100"]
    assert main(args) == 0
    report = json.loads(out.with_suffix(".adaptation.json").read_text())
    assert list(report["arms"]) == ["no adaptation", "distilled", "random real, learned lrs",
                                    "random real, best fixed lr", "full target data"]
    assert report["networks"] == 1 and report["images"] == 20 and report["steps"] == 2
    assert "| distilled |" in capsys.readouterr().out
    held_out = load_pool(pool_dir).network(2)
    from securedd.data import load_dataset

    test = load_dataset("digits", "test")
    assert report["arms"]["no adaptation"]["accuracy"]["values"] == [round(score_model(held_out, test).accuracy, 2)]
    assert main(args) == 0  # an existing artifact is scored again, not distilled again
    assert "exists: scoring it" in capsys.readouterr().out
