"""Where the time goes: a phase timer for ``--profile``.

The hot loops mark their phases with :func:`phase` (reading data, augmentation, forward,
backward, the optimiser step, scoring). Outside :func:`profiling` a mark costs about a
microsecond (entering and leaving an empty context manager); inside, each phase's time
is counted exclusively (a phase nested in another pauses the outer one), so the phases
and "other" add up to the wall time.

On a CPU, operations finish before they return and the split is exact; on an accelerator,
work is queued and its time lands on whichever phase waits for it.

Example:
    >>> import time
    >>> with profiling() as prof:
    ...     with phase("forward"):
    ...         with phase("augmentation"):
    ...             time.sleep(0.01)
    >>> sorted(prof.seconds) == ["augmentation", "forward"] and prof.seconds["augmentation"] >= 0.01
    True
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["PHASES", "Profile", "phase", "profiling"]

PHASES = ("data", "augmentation", "forward", "backward", "optimiser", "scoring")
"""The phases the loops mark, in the order a report lists them."""


@dataclass
class Profile:
    """Exclusive seconds and entries per phase, over the wall time of one :func:`profiling` block."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    wall: float = 0.0
    _names: list[str] = field(default_factory=list)  # the open phases, innermost last
    _starts: list[float] = field(default_factory=list)  # when each last started or resumed

    def enter(self, name: str) -> None:
        now = time.perf_counter()
        if self._names:  # pause the enclosing phase
            self.seconds[self._names[-1]] += now - self._starts[-1]
        self._names.append(name)
        self._starts.append(now)

    def leave(self) -> None:
        now = time.perf_counter()
        name, start = self._names.pop(), self._starts.pop()
        self.seconds[name] += now - start
        self.calls[name] += 1
        if self._starts:  # resume the enclosing phase
            self._starts[-1] = now

    def table(self) -> str:
        """A Markdown table: each phase's seconds, share of the wall time and entries, then the rest."""
        names = [n for n in PHASES if n in self.seconds] + sorted(set(self.seconds) - set(PHASES))
        wall = max(self.wall, 1e-9)
        rows = ["| phase | seconds | share | entries |", "|---|---|---|---|"]
        for name in names:
            rows.append(f"| {name} | {self.seconds[name]:.2f} | {100 * self.seconds[name] / wall:.1f}% | "
                        f"{self.calls[name]} |")
        other = max(wall - sum(self.seconds.values()), 0.0)
        rows.append(f"| other | {other:.2f} | {100 * other / wall:.1f}% | |")
        rows.append(f"| **wall** | {self.wall:.2f} | 100% | |")
        return "\n".join(rows)


_active: Profile | None = None


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the block's time towards ``name`` when a :func:`profiling` block is open."""
    prof = _active
    if prof is None:
        yield
        return
    prof.enter(name)
    try:
        yield
    finally:
        prof.leave()


@contextmanager
def profiling(enabled: bool = True) -> Iterator[Profile]:
    """Time the marked phases inside the block (``enabled=False``: an empty profile, no timing)."""
    global _active
    prof = Profile()
    if not enabled:
        yield prof
        return
    outer, _active = _active, prof
    start = time.perf_counter()
    try:
        yield prof
    finally:
        prof.wall = time.perf_counter() - start
        _active = outer
