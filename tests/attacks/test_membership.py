"""Membership inference: the scores, the ROC summary, and LiRA against the threshold attack."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from securedd.attacks.membership import (
    LiraShadows,
    MembershipResult,
    logit_confidence,
    loss_scores,
    query_confidence,
    roc_summary,
    run_lira,
    shifted_views,
)
from securedd.data.spec import RealData
from securedd.errors import ConfigError
from securedd.models import create_model
from securedd.training import TrainSettings, train_model


def test_logit_confidence_is_the_log_odds_of_the_true_class(digits_train):
    model = create_model("mlp", digits_train.spec.shape, 10, generator=torch.Generator().manual_seed(0))
    data = digits_train.subset(torch.arange(50))
    p = torch.softmax(model(data.images).double(), 1).gather(1, data.labels[:, None]).squeeze(1)
    torch.testing.assert_close(logit_confidence(model, data), torch.log(p / (1 - p)).detach())
    torch.testing.assert_close(loss_scores(model, data), torch.log(p).detach())


def test_roc_summary_reads_perfect_and_blind_attacks():
    members = np.arange(2000) < 1000
    auc, tpr, _, _ = roc_summary(members.astype(float), members)
    assert auc == 1 and tpr == {"0.1%FPR": 1.0, "1%FPR": 1.0}
    auc, tpr, _, _ = roc_summary(np.random.default_rng(0).random(2000), members)
    assert abs(auc - 0.5) < 0.05 and tpr["0.1%FPR"] < 0.02
    with pytest.raises(ConfigError, match="both members and non-members"):
        roc_summary(np.ones(3), np.ones(3, dtype=bool))


def _overfit(data: RealData, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(1000 + seed)
    model = create_model("mlp", data.spec.shape, 10, generator=gen)
    return train_model(model, data.images, data.labels, TrainSettings(epochs=60, lr=0.05, batch_size=32), gen)


def test_lira_beats_the_threshold_attack_at_low_fpr_on_an_overfit_target(digits_train):
    torch.set_num_threads(1)
    pool = digits_train.subset(torch.randperm(len(digits_train), generator=torch.Generator().manual_seed(0))[:800])
    shadows = run_lira(_overfit, pool, 16, torch.Generator().manual_seed(1), progress=False)
    assert (shadows.inside.sum(0) == 8).all()  # every example in exactly half of the shadows
    members = torch.rand(len(pool), generator=torch.Generator().manual_seed(2)) < 0.5
    target = _overfit(pool.subset(torch.nonzero(members).flatten()), 99)
    phi = logit_confidence(target, pool)
    threshold = MembershipResult("threshold", loss_scores(target, pool).numpy(), members.numpy())
    online = MembershipResult("lira-online", shadows.scores(phi), members.numpy())
    offline = MembershipResult("lira-offline", shadows.scores(phi, online=False), members.numpy())
    assert threshold.auc > 0.5 and online.auc > 0.6 and offline.auc > 0.6
    assert online.tpr_at["0.1%FPR"] > 2 * threshold.tpr_at["0.1%FPR"]  # LiRA's edge is at low FPR
    assert online.to_dict()["members"] == int(members.sum())


def test_online_lira_refuses_examples_no_shadow_left_out():
    shadows = LiraShadows(torch.zeros(2, 3), torch.tensor([[True, True, False], [True, False, True]]))
    with pytest.raises(ConfigError, match="train more shadows"):
        shadows.scores(torch.zeros(3))


def test_shifted_views_move_the_image_and_repeat_its_edge(digits_train):
    data = digits_train.subset(torch.arange(4))
    assert shifted_views(data, 0) == [data]
    views = shifted_views(data, 2)
    assert len(views) == 5 and views[0] is data
    down, up, right, left = (v.images for v in views[1:])
    x = data.images
    torch.testing.assert_close(down[..., 2:, :], x[..., :-2, :])
    torch.testing.assert_close(down[..., :2, :], x[..., :1, :].expand_as(down[..., :2, :]))
    torch.testing.assert_close(up[..., :-2, :], x[..., 2:, :])
    torch.testing.assert_close(right[..., :, 2:], x[..., :, :-2])
    torch.testing.assert_close(left[..., :, :-2], x[..., :, 2:])
    assert all(torch.equal(v.labels, data.labels) for v in views)
    with pytest.raises(ConfigError, match="shift must be >= 0"):
        shifted_views(data, -1)


def test_lira_with_repeated_queries_scores_as_one_query(digits_train):
    gen = torch.Generator().manual_seed(0)
    inside = torch.stack([torch.randperm(6, generator=gen) < 3 for _ in range(40)], 1)
    phi = torch.randn(6, 40, generator=gen)
    target = torch.randn(40, generator=gen)
    one = LiraShadows(phi, inside)
    five = LiraShadows(phi[:, None].expand(6, 5, 40), inside)
    for online in (True, False):
        np.testing.assert_allclose(five.scores(target.expand(5, 40), online=online), one.scores(target, online=online))
    with pytest.raises(ConfigError, match="same query shift"):
        five.scores(target)
    model = create_model("mlp", digits_train.spec.shape, 10, generator=gen)
    queries = query_confidence(model, digits_train.subset(torch.arange(7)), 1)
    assert queries.shape == (5, 7)
    torch.testing.assert_close(queries[0], logit_confidence(model, digits_train.subset(torch.arange(7))))
