"""Graceful Ctrl-C for long loops.

Inside :class:`StopOnInterrupt`, the first SIGINT (Ctrl-C) only sets ``requested``: the
loop finishes its current unit of work, saves what it needs at that safe point and leaves
(the distillation loop writes a checkpoint and raises :class:`~securedd.errors.Interrupted`).
A second SIGINT raises :class:`KeyboardInterrupt` at once. The previous handler is restored
on exit. Handlers can only be installed in the main thread; elsewhere, and where SIGINT is
ignored, the context does nothing and Ctrl-C keeps its usual meaning.

Example:
    >>> with StopOnInterrupt() as stop:
    ...     for step in range(3):
    ...         pass                     # one unit of work
    ...         if stop.requested:       # a safe point: save, then leave
    ...             break
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["StopOnInterrupt"]

log = logging.getLogger(__name__)


class StopOnInterrupt:
    """Context manager turning the first Ctrl-C into a stop request (see the module docstring).

    Args:
        what: how the log message names the safe point, e.g. ``"the current iteration"``.
    """

    def __init__(self, what: str = "the current step") -> None:
        self.what = what
        self.requested = False
        self.installed = False
        self._previous: Any = None

    def request(self) -> None:
        """Ask the loop to stop at its next safe point (what the first Ctrl-C does)."""
        self.requested = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("Ctrl-C: stopping after %s and saving a checkpoint; press Ctrl-C again to abort at once", self.what)

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN:  # e.g. a background job: Ctrl-C is not ours to take
            return self
        self._previous = previous if previous is not None else signal.SIG_DFL
        signal.signal(signal.SIGINT, self._handle)
        self.installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self._previous)
            self.installed = False
