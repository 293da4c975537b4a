"""Client-side defences of SFDD (REFERENCE section 4) and the privacy ledger.

- **LDPO-RLD** (:func:`ldpo_rld_targets`): in the matching loss only, the one-hot label of
  a real or synthetic image of class ``c`` becomes a distribution: ``1 - eps`` on ``c``
  and ``eps`` spread over ``k`` other classes drawn at random, by a random ranking
  (``linear``: class of rank ``r`` gets ``eps * 2r / (k (k + 1))``) or evenly
  (``uniform``: ``eps / k`` each, the earlier KDk defence). By default one draw per class
  and matching step serves the real and the synthetic images of that class alike (the
  paper's ``Lin(y_c, k, eps)``); ``draw="image"`` draws per image. It is a heuristic with
  no formal guarantee: it never reports an epsilon.
- **The paper's LocalDP** (:func:`laplace_local_dp`): clamp the update per coordinate and
  add Laplace noise per coordinate. Per coordinate only, its epsilon over a whole image
  set is vacuous; the ledger records it as ``"none"``.
- **Gaussian LocalDP** (:func:`gaussian_local_dp`): clip the update ``S_i - S^g`` to L2
  norm ``C`` and add ``N(0, (z * 2C)^2)`` per coordinate (``z`` the noise multiplier; the
  sensitivity of a clipped update is ``2C``). :class:`PrivacyLedger` composes the rounds
  with Google's ``dp_accounting`` (RDP or PLD) and reports (epsilon, delta).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from securedd.errors import ConfigError

__all__ = ["DISPERSIONS", "DRAWS", "PrivacyLedger", "gaussian_local_dp", "laplace_local_dp", "ldpo_rld_targets"]

DISPERSIONS = ("linear", "uniform")
DRAWS = ("class", "image")


def ldpo_rld_targets(labels: torch.Tensor, num_classes: int, k: int, eps: float, dispersion: str,
                     generator: torch.Generator, draw: str = "class") -> torch.Tensor:
    """(N, K) LDPO-RLD target distributions for hard ``labels`` (N,).

    ``draw="class"``: one draw per class present, shared by every image of that class
    (the paper's ``Lin(y_c, k, eps)``, a function of the class: within one matching step,
    the real and synthetic images of class ``c`` train against the same distribution).
    ``draw="image"``: a fresh draw per image.
    """
    if dispersion not in DISPERSIONS:
        raise ConfigError(f"the LDPO-RLD dispersion must be one of {', '.join(DISPERSIONS)}; got '{dispersion}'")
    if draw not in DRAWS:
        raise ConfigError(f"the LDPO-RLD draw must be one of {', '.join(DRAWS)}; got '{draw}'")
    if not 1 <= k < num_classes or not 0 <= eps < 1:
        raise ConfigError(f"LDPO-RLD needs 1 <= k < {num_classes} and 0 <= eps < 1; got k={k}, eps={eps}")
    if draw == "class":
        classes, index = labels.unique(return_inverse=True)
        return ldpo_rld_targets(classes, num_classes, k, eps, dispersion, generator, "image")[index]
    n = len(labels)
    # k other classes per image: a random permutation of the non-true classes, first k kept
    scores = torch.rand((n, num_classes), generator=generator, device=generator.device).to(labels.device)
    scores[torch.arange(n, device=labels.device), labels] = 2.0  # the true class sorts last
    others = scores.argsort(1)[:, :k]  # (n, k), in random order: position i has rank i + 1
    if dispersion == "linear":
        ranks = torch.arange(1, k + 1, dtype=torch.float32, device=labels.device)
        mass = eps * 2 * ranks / (k * (k + 1))
    else:
        mass = torch.full((k,), eps / k, device=labels.device)
    targets = torch.zeros((n, num_classes), device=labels.device)
    targets[torch.arange(n, device=labels.device), labels] = 1 - eps
    targets.scatter_(1, others, mass.expand(n, k).contiguous())
    return targets


def laplace_local_dp(update: torch.Tensor, clamp: float, scale: float, generator: torch.Generator) -> torch.Tensor:
    """The SFDD paper's LocalDP: clamp each coordinate to [-clamp, clamp], add Laplace(0, scale) noise."""
    if clamp <= 0 or scale < 0:
        raise ConfigError(f"LocalDP needs clamp > 0 and scale >= 0; got clamp={clamp}, scale={scale}")
    u = torch.rand(update.shape, generator=generator, device=generator.device).to(update) - 0.5
    noise = -scale * u.sign() * torch.log1p(-2 * u.abs())
    return update.clamp(-clamp, clamp) + noise


def gaussian_local_dp(update: torch.Tensor, clip: float, noise_multiplier: float,
                      generator: torch.Generator) -> torch.Tensor:
    """Clip ``update`` to L2 norm ``clip``, add N(0, (noise_multiplier * 2 clip)^2) per coordinate."""
    if clip <= 0 or noise_multiplier < 0:
        raise ConfigError(f"Gaussian LocalDP needs clip > 0 and noise_multiplier >= 0; got {clip}, {noise_multiplier}")
    norm = float(update.norm())
    clipped = update * min(1.0, clip / norm) if norm > 0 else update
    noise = torch.randn(update.shape, generator=generator, device=generator.device).to(update)
    return clipped + noise * noise_multiplier * 2 * clip


@dataclass
class PrivacyLedger:
    """What the run spent: the Gaussian mechanism per round, composed by an accountant.

    ``accountant``: ``rdp`` or ``pld`` (``dp_accounting``). A run without a formal
    mechanism records ``mechanism="none"`` and reports no epsilon.
    """

    mechanism: str = "none"  # "gaussian" | "laplace-per-coordinate" | "ldpo-rld" | "none"
    noise_multiplier: float = 0.0
    rounds: int = 0
    delta: float = 1e-5
    accountant: str = "rdp"

    def epsilon(self) -> float | None:
        """Epsilon at ``delta`` after ``rounds`` Gaussian rounds; ``None`` without a formal guarantee."""
        if self.mechanism != "gaussian":
            return None
        if self.noise_multiplier <= 0:
            return float("inf")
        if self.rounds == 0:
            return 0.0
        import dp_accounting
        from dp_accounting import pld, rdp

        event = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(self.noise_multiplier), self.rounds)
        if self.accountant == "rdp":
            acc: Any = rdp.RdpAccountant()
        elif self.accountant == "pld":
            acc = pld.PLDAccountant()
        else:
            raise ConfigError(f"the accountant must be rdp or pld; got '{self.accountant}'")
        acc.compose(event)
        return float(acc.get_epsilon(self.delta))

    def to_dict(self) -> dict[str, Any]:
        """The ledger as the artifact stores it (epsilon only for a formal mechanism)."""
        out: dict[str, Any] = {"mechanism": self.mechanism, "rounds": self.rounds}
        if self.mechanism == "gaussian":
            out.update(noise_multiplier=self.noise_multiplier, delta=self.delta, accountant=self.accountant,
                       epsilon=self.epsilon())
        return out
