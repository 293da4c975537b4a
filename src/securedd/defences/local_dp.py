"""Local differential privacy on a client's update ``S_i - S^g`` (SFDD, REFERENCE section 4).

- **The paper's LocalDP** (:func:`laplace_local_dp`): clamp the update per coordinate and
  add Laplace noise per coordinate. Per coordinate only, its epsilon over a whole image
  set is vacuous; the ledger records it without an epsilon.
- **Gaussian LocalDP** (:func:`gaussian_local_dp`): clip the update to L2 norm ``C`` and
  add ``N(0, (z * 2C)^2)`` per coordinate (``z`` the noise multiplier; the sensitivity of
  a clipped update is ``2C``). The ledger composes the rounds with an RDP or PLD
  accountant and reports (epsilon, delta).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from securedd.defences.accounting import PrivacyLedger
from securedd.defences.base import DEFENCES, Defence
from securedd.errors import ConfigError

__all__ = ["GaussianLocalDP", "GaussianParams", "LaplaceLocalDP", "LaplaceParams", "gaussian_local_dp",
           "laplace_local_dp"]


def laplace_local_dp(update: torch.Tensor, clamp: float, scale: float, generator: torch.Generator) -> torch.Tensor:
    """The SFDD paper's LocalDP: clamp each coordinate to [-clamp, clamp], add Laplace(0, scale) noise."""
    _check_laplace(clamp, scale)
    u = torch.rand(update.shape, generator=generator, device=generator.device).to(update) - 0.5
    # a draw of exactly 0 gives u = -0.5 and an infinite sample: keep u inside (-0.5, 0.5)
    u = u.clamp_min(-0.5 + torch.finfo(u.dtype).eps)
    noise = -scale * u.sign() * torch.log1p(-2 * u.abs())
    return update.clamp(-clamp, clamp) + noise


def gaussian_local_dp(update: torch.Tensor, clip: float, noise_multiplier: float,
                      generator: torch.Generator) -> torch.Tensor:
    """Clip ``update`` to L2 norm ``clip``, add N(0, (noise_multiplier * 2 clip)^2) per coordinate.

    >>> out = gaussian_local_dp(torch.full((4,), 3.0), 1.0, 0.0, torch.Generator())
    >>> round(float(out.norm()), 4)
    1.0
    """
    _check_gaussian(clip, noise_multiplier)
    norm = float(update.norm())
    clipped = update * min(1.0, clip / norm) if norm > 0 else update
    noise = torch.randn(update.shape, generator=generator, device=generator.device).to(update)
    return clipped + noise * noise_multiplier * 2 * clip


def _check_laplace(clamp: float, scale: float) -> None:
    if clamp <= 0 or scale < 0:
        raise ConfigError(f"LocalDP needs clamp > 0 and scale >= 0; got clamp={clamp}, scale={scale}")


def _check_gaussian(clip: float, noise_multiplier: float) -> None:
    if clip <= 0 or noise_multiplier < 0:
        raise ConfigError(f"Gaussian LocalDP needs clip > 0 and noise_multiplier >= 0; got clip={clip}, "
                          f"noise_multiplier={noise_multiplier}")


@dataclass(frozen=True)
class LaplaceParams:
    """Per-coordinate ``clamp`` of the update and Laplace noise ``scale``."""

    clamp: float = 1.0
    scale: float = 0.1

    def __post_init__(self) -> None:
        _check_laplace(self.clamp, self.scale)


@dataclass(frozen=True)
class GaussianParams:
    """L2 ``clip`` of the update and the Gaussian ``noise_multiplier``."""

    clip: float = 1.0
    noise_multiplier: float = 1.0

    def __post_init__(self) -> None:
        _check_gaussian(self.clip, self.noise_multiplier)


@DEFENCES.register("localdp-laplace")
class LaplaceLocalDP(Defence[LaplaceParams]):
    """The SFDD paper's LocalDP: per-coordinate clamp and Laplace noise on the client's update.

    Threat model: a server (or eavesdropper) that sees each client's update. The noise
    blurs each coordinate; over a whole image set the per-coordinate epsilon composes to
    nothing useful, so the ledger reports none.
    """

    name = "localdp-laplace"
    Params = LaplaceParams
    stage = "client"

    def release(self, update: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return laplace_local_dp(update, self.params.clamp, self.params.scale, generator)

    def ledger(self, rounds: int, *, delta: float = 1e-5, accountant: str = "rdp") -> PrivacyLedger:
        return PrivacyLedger("laplace-per-coordinate", rounds=rounds)


@DEFENCES.register("localdp-gaussian")
class GaussianLocalDP(Defence[GaussianParams]):
    """Gaussian LocalDP: clip the client's update in L2 and add Gaussian noise (a formal (epsilon, delta)).

    Threat model: a server or eavesdropper that sees every update of every round. Each
    released update is the Gaussian mechanism on a clipped update, so the rounds compose
    to the (epsilon, delta) the ledger reports (RDP or PLD accountant), with respect to a
    client's whole update in a round; it says nothing of what the final set reveals
    beyond that composition.
    """

    name = "localdp-gaussian"
    Params = GaussianParams
    stage = "client"

    def release(self, update: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return gaussian_local_dp(update, self.params.clip, self.params.noise_multiplier, generator)

    def ledger(self, rounds: int, *, delta: float = 1e-5, accountant: str = "rdp") -> PrivacyLedger:
        return PrivacyLedger("gaussian", self.params.noise_multiplier, rounds, delta, accountant)
