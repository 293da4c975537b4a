"""Defences, each registered by name with the same contract (:class:`Defence`); importing this registers them all.

Client stage: ``ldpo-rld`` (label dispersion), ``localdp-laplace``, ``localdp-gaussian``.
Server stage: ``median``, ``trimmed-mean`` (robust aggregation). Artifact stage:
``signing``. ``securedd list defences`` shows them.
"""

from securedd.defences import label_dispersion as _ldpo  # noqa: F401  (registers the defences)
from securedd.defences import local_dp as _ldp  # noqa: F401
from securedd.defences import robust_aggregation as _robust  # noqa: F401
from securedd.defences import signing as _signing  # noqa: F401
from securedd.defences.accounting import PrivacyLedger
from securedd.defences.base import DEFENCES, STAGES, Defence, defence_from_dict, list_defences, make_defence

__all__ = ["DEFENCES", "STAGES", "Defence", "PrivacyLedger", "defence_from_dict", "list_defences", "make_defence"]
