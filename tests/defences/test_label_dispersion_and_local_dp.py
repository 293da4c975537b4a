"""LDPO-RLD targets, the two LocalDP mechanisms and the privacy ledger's epsilon."""

from __future__ import annotations

import math

import pytest
import torch

from securedd.defences.accounting import PrivacyLedger, noise_for_epsilon
from securedd.defences.label_dispersion import ldpo_rld_targets
from securedd.defences.local_dp import gaussian_local_dp, laplace_local_dp
from securedd.errors import ConfigError


def test_ldpo_rld_linear_matches_the_prototype_setting():
    labels = torch.arange(10).repeat(50)
    t = ldpo_rld_targets(labels, 10, k=9, eps=9 / 11, dispersion="linear", generator=torch.Generator().manual_seed(0),
                         draw="image")
    assert torch.allclose(t.sum(1), torch.ones(500))
    assert torch.allclose(t[torch.arange(500), labels], torch.full((500,), 10 / 55))
    for row, y in zip(t, labels, strict=True):  # the other nine classes get 1/55 ... 9/55, one each
        others = torch.cat([row[:y], row[y + 1 :]]).sort().values
        assert torch.allclose(others, torch.arange(1, 10) / 55)
    assert torch.equal(t.argmax(1), labels)  # eps = 9/11 < (k+1)/(k+3) = 10/12: the true class stays on top
    over = ldpo_rld_targets(labels, 10, 9, 0.9, "linear", torch.Generator().manual_seed(0), draw="image")
    assert not (over.argmax(1) == labels).any()  # past the bound, the top-ranked other class wins
    rankings = {tuple(row.tolist()) for row in t[labels == 0]}
    assert len(rankings) > 40  # a fresh random ranking per image


def test_ldpo_rld_class_draw_shares_one_distribution_per_class():
    labels = torch.tensor([3, 7, 3, 3, 7])
    t = ldpo_rld_targets(labels, 10, k=9, eps=9 / 11, dispersion="linear", generator=torch.Generator().manual_seed(0))
    assert torch.equal(t[0], t[2]) and torch.equal(t[0], t[3]) and torch.equal(t[1], t[4])
    assert not torch.equal(t[0], t[1]) and torch.equal(t.argmax(1), labels)
    assert sorted(t[0].tolist()) == pytest.approx(sorted([10 / 55, *(torch.arange(1, 10) / 55).tolist()]))
    gen = torch.Generator().manual_seed(0)
    first, second = (ldpo_rld_targets(torch.zeros(4, dtype=torch.long), 10, 9, 9 / 11, "linear", gen) for _ in "ab")
    assert not torch.equal(first[0], second[0])  # a fresh ranking for every call (matching step)
    with pytest.raises(ConfigError, match="draw must be one of class, image"):
        ldpo_rld_targets(labels, 10, 9, 9 / 11, "linear", torch.Generator(), draw="batch")


def test_ldpo_rld_uniform_and_small_k_keep_the_true_class_on_top():
    labels = torch.arange(10).repeat(20)
    t = ldpo_rld_targets(labels, 10, k=3, eps=0.3, dispersion="uniform", generator=torch.Generator().manual_seed(1))
    assert torch.equal(t.argmax(1), labels) and ((t > 0).sum(1) == 4).all()
    assert torch.allclose(t.sum(1), torch.ones(200))
    with pytest.raises(ConfigError, match="dispersion"):
        ldpo_rld_targets(labels, 10, 3, 0.3, "zipf", torch.Generator())
    with pytest.raises(ConfigError, match="1 <= k < 10"):
        ldpo_rld_targets(labels, 10, 10, 0.3, "linear", torch.Generator())


def test_local_dp_mechanisms():
    gen = torch.Generator().manual_seed(0)
    update = torch.randn(100_000, generator=gen) * 5
    noisy = laplace_local_dp(update, clamp=1.0, scale=0.5, generator=gen)
    noise = noisy - update.clamp(-1, 1)
    assert abs(float(noise.abs().mean()) - 0.5) < 0.01  # Laplace(b): E|X| = b
    clipped = gaussian_local_dp(update, clip=2.0, noise_multiplier=0.0, generator=gen)
    assert math.isclose(float(clipped.norm()), 2.0, rel_tol=1e-5)
    noisy = gaussian_local_dp(update, clip=2.0, noise_multiplier=1.5, generator=gen)
    assert abs(float((noisy - clipped).std()) - 6.0) < 0.05  # sigma = z * 2C


def test_ledger_epsilon_matches_the_reference_values():
    rdp = PrivacyLedger("gaussian", noise_multiplier=1.0, rounds=100, delta=1e-5, accountant="rdp")
    pld = PrivacyLedger("gaussian", noise_multiplier=1.0, rounds=100, delta=1e-5, accountant="pld")
    assert abs(rdp.epsilon() - 96.1) / 96.1 < 0.05 and abs(pld.epsilon() - 91.8) / 91.8 < 0.05
    assert abs(PrivacyLedger("gaussian", 6.38, 100, 1e-5, "rdp").epsilon() - 8) < 0.5
    heuristic = PrivacyLedger("ldpo-rld", rounds=100)
    assert heuristic.epsilon() is None and "epsilon" not in heuristic.to_dict()
    assert rdp.to_dict()["epsilon"] == pytest.approx(rdp.epsilon())


def test_laplace_noise_is_finite_even_for_a_draw_of_zero(monkeypatch):
    """torch.rand returns 0.0 now and then (u = -0.5, an infinite inverse-CDF sample); the noise stays finite."""
    monkeypatch.setattr(torch, "rand", lambda shape, **kwargs: torch.zeros(shape))
    noisy = laplace_local_dp(torch.zeros(4), 1.0, 0.1, torch.Generator().manual_seed(0))
    assert torch.isfinite(noisy).all() and (noisy.abs() > 1).all()  # the extreme draw: large, but finite


@pytest.mark.parametrize(("epsilon", "rounds", "accountant"), [(8.0, 100, "rdp"), (1.0, 100, "rdp"), (50.0, 10, "rdp"),
                                                            (8.0, 20, "pld")])
def test_noise_for_epsilon_is_the_ledgers_inverse_from_the_safe_side(epsilon, rounds, accountant):
    z = noise_for_epsilon(epsilon, rounds, accountant=accountant)
    spent = PrivacyLedger("gaussian", z, rounds, 1e-5, accountant).epsilon()
    assert spent <= epsilon and spent > 0.99 * epsilon  # at the target, never above it
    assert PrivacyLedger("gaussian", 0.99 * z, rounds, 1e-5, accountant).epsilon() > epsilon  # and the least noise


def test_noise_for_epsilon_matches_the_reference_and_refuses_what_has_no_answer():
    assert noise_for_epsilon(8.0, 100) == pytest.approx(6.38, abs=0.01)  # REFERENCE section 4
    assert noise_for_epsilon(8.0, 100, accountant="pld") < noise_for_epsilon(8.0, 100)  # PLD is tighter
    for bad in ({"epsilon": 0.0, "rounds": 10}, {"epsilon": math.nan, "rounds": 10}, {"epsilon": 1.0, "rounds": 0},
                {"epsilon": 1.0, "rounds": 10, "delta": 1.0}):
        with pytest.raises(ConfigError, match="target epsilon needs"):
            noise_for_epsilon(**bad)
    with pytest.raises(ConfigError, match="accountant must be one of"):
        noise_for_epsilon(1.0, 10, accountant="moments")
