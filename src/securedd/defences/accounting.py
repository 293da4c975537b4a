"""What a defended run spent: the privacy ledger, composed by Google's ``dp_accounting``.

Only the Gaussian mechanism on clipped updates has a formal guarantee here; the ledger
composes its rounds with an RDP or PLD accountant and reports (epsilon, delta). Every
other defence records its mechanism's name and no epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from securedd.errors import ConfigError

__all__ = ["ACCOUNTANTS", "PrivacyLedger", "noise_for_epsilon"]

ACCOUNTANTS = ("rdp", "pld")


@dataclass
class PrivacyLedger:
    """What the run spent: the Gaussian mechanism per round, composed by an accountant.

    ``accountant``: ``rdp`` or ``pld`` (``dp_accounting``). A run without a formal
    mechanism records ``mechanism="none"`` (or the heuristic's name) and reports no
    epsilon.

    >>> PrivacyLedger("gaussian", noise_multiplier=0.0, rounds=3).epsilon()
    inf
    >>> PrivacyLedger("ldpo-rld", rounds=3).to_dict()
    {'mechanism': 'ldpo-rld', 'rounds': 3}
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
        acc = _accountant(self.accountant)
        acc.compose(_rounds(self.noise_multiplier, self.rounds))
        return float(acc.get_epsilon(self.delta))

    def to_dict(self) -> dict[str, Any]:
        """The ledger as the artifact stores it (epsilon only for a formal mechanism)."""
        out: dict[str, Any] = {"mechanism": self.mechanism, "rounds": self.rounds}
        if self.mechanism == "gaussian":
            out.update(noise_multiplier=self.noise_multiplier, delta=self.delta, accountant=self.accountant,
                       epsilon=self.epsilon())
        return out


def _accountant(name: str) -> Any:
    from dp_accounting import pld, rdp

    if name == "rdp":
        return rdp.RdpAccountant()
    if name == "pld":
        return pld.PLDAccountant()
    raise ConfigError(f"the accountant must be one of {', '.join(ACCOUNTANTS)}; got '{name}'")


def _rounds(noise_multiplier: float, rounds: int) -> Any:
    import dp_accounting

    return dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)


def noise_for_epsilon(epsilon: float, rounds: int, *, delta: float = 1e-5, accountant: str = "rdp") -> float:
    """The smallest noise multiplier (to 0.1%) whose ``rounds`` Gaussian rounds spend at most ``epsilon``.

    The inverse of :meth:`PrivacyLedger.epsilon`, found by ``dp_accounting``'s calibration
    (a bisection on the accountant itself), so the ledger of a run with the returned
    multiplier reports an epsilon at or just below the target.

    >>> round(noise_for_epsilon(8.0, 100), 2)
    6.38
    """
    if not epsilon > 0 or rounds < 1 or not 0 < delta < 1:
        raise ConfigError(f"a target epsilon needs epsilon > 0, rounds >= 1 and 0 < delta < 1; got epsilon {epsilon}, "
                          f"rounds {rounds}, delta {delta}")
    from dp_accounting import mechanism_calibration

    _accountant(accountant)  # an unknown name fails before the search

    def search(name: str, low: float, high: float) -> float:
        return float(mechanism_calibration.calibrate_dp_mechanism(
            lambda: _accountant(name), lambda z: _rounds(z, rounds), epsilon, delta,
            mechanism_calibration.ExplicitBracketInterval(low, high), tol=1e-3 * low))

    found = search("rdp", 1e-3, 1e4)
    # PLD is tighter than RDP, so it needs at most RDP's noise; its grid explodes at tiny noise
    return found if accountant == "rdp" else search("pld", found / 4, found)
