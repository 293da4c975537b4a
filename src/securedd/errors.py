"""Exceptions raised by securedd.

Every error carries a message that says what was wrong and how to fix it. The command
line turns them into a one-paragraph message and exit code 2; library users can catch
:class:`SecureddError` to handle all of them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DataError",
    "Interrupted",
    "MismatchError",
    "SecureddError",
    "UnknownNameError",
    "did_you_mean",
]


class SecureddError(Exception):
    """Base class of every error securedd raises on purpose."""


class ConfigError(SecureddError, ValueError):
    """A configuration value, override or flag is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A name (dataset, model, method...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(SecureddError):
    """A dataset is missing, unreadable or unsuitable for the request."""


class ArtifactError(SecureddError):
    """An artifact file is missing, corrupted, tampered with or of an unknown schema."""


class MismatchError(SecureddError, ValueError):
    """Two things that must agree (artifact vs model, IPC vs class size...) do not."""


class Interrupted(SecureddError):
    """A run was stopped by Ctrl-C (SIGINT) after saving a checkpoint it can resume from.

    Attributes:
        checkpoint: the checkpoint file written.
        iteration: iterations completed (and saved).
        total: iterations the run was configured for.
    """

    def __init__(self, checkpoint: Path, iteration: int, total: int) -> None:
        super().__init__(f"interrupted at iteration {iteration}/{total}; checkpoint saved to {checkpoint}")
        self.checkpoint, self.iteration, self.total = checkpoint, iteration, total

    def __reduce__(self) -> tuple[type, tuple[Path, int, int]]:  # picklable across processes
        return type(self), (self.checkpoint, self.iteration, self.total)


class Diverged(SecureddError):
    """A distillation's loss became infinite or NaN; no update was taken from that loss."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=1, cutoff=0.5)
    if not close:
        return ""
    original = {c.lower(): c for c in choices}[close[0]]
    return f" Did you mean '{original}'?"
