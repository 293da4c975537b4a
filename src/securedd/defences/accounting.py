"""What a defended run spent: the privacy ledger, composed by Google's ``dp_accounting``.

Only the Gaussian mechanism on clipped updates has a formal guarantee here; the ledger
composes its rounds with an RDP or PLD accountant and reports (epsilon, delta). Every
other defence records its mechanism's name and no epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from securedd.errors import ConfigError

__all__ = ["ACCOUNTANTS", "PrivacyLedger"]

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
        import dp_accounting
        from dp_accounting import pld, rdp

        event = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(self.noise_multiplier), self.rounds)
        if self.accountant == "rdp":
            acc: Any = rdp.RdpAccountant()
        elif self.accountant == "pld":
            acc = pld.PLDAccountant()
        else:
            raise ConfigError(f"the accountant must be one of {', '.join(ACCOUNTANTS)}; got '{self.accountant}'")
        acc.compose(event)
        return float(acc.get_epsilon(self.delta))

    def to_dict(self) -> dict[str, Any]:
        """The ledger as the artifact stores it (epsilon only for a formal mechanism)."""
        out: dict[str, Any] = {"mechanism": self.mechanism, "rounds": self.rounds}
        if self.mechanism == "gaussian":
            out.update(noise_multiplier=self.noise_multiplier, delta=self.delta, accountant=self.accountant,
                       epsilon=self.epsilon())
        return out
