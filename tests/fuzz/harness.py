"""What every fuzz target shares: the example budget, the 5-second hang guard and the outcome counts.

A short run is part of the default tests; ``make fuzz`` sets ``SECUREDD_FUZZ_EXAMPLES``
(10,000 per target) and ``SECUREDD_FUZZ_REPORT`` (where the counts are written).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

from securedd.errors import SecureddError

EXAMPLES = int(os.environ.get("SECUREDD_FUZZ_EXAMPLES", "20"))
HANG_SECONDS = 5.0
COUNTS: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

fuzz = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=HANG_SECONDS), database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])
"""Hypothesis settings of every target: the budget, any example over 5 s fails as a hang, and a fixed
seed per target, so that a run's counts repeat and the default tests never change from run to run."""


class Hang(Exception):
    """An example ran longer than the hang limit."""


@contextlib.contextmanager
def hang_guard(seconds: float = 2 * HANG_SECONDS) -> Iterator[None]:
    """Interrupt a call that never returns (Hypothesis's deadline only judges calls that end)."""
    def _raise(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


T = TypeVar("T")


def outcome(target: str, call: Callable[[], T]) -> T | None:
    """Run ``call``: a securedd error counts as a clean refusal (``None``), a result as a load.

    Anything else -- a traceback of another type, a hang -- propagates and fails the target.
    """
    COUNTS[target]["cases"] += 1
    with hang_guard():
        try:
            result = call()
        except SecureddError:
            COUNTS[target]["refused (clean securedd error)"] += 1
            return None
    COUNTS[target]["accepted"] += 1
    return result
