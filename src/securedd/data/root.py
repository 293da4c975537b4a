"""Where datasets live: ``--data-root``, else ``$SECUREDD_DATA``, else ``~/.cache/securedd/data``."""

from __future__ import annotations

import os
from pathlib import Path

from securedd.errors import DataError

__all__ = ["DEFAULT_ROOT", "resolve_root"]

DEFAULT_ROOT = Path("~/.cache/securedd/data").expanduser()


def resolve_root(root: str | os.PathLike[str] | None = None, *, must_exist: bool = True) -> Path:
    """The data root to use; an explicit root that does not exist is an error."""
    if root is not None:
        path = Path(root).expanduser()
        source = "--data-root"
    elif os.environ.get("SECUREDD_DATA"):
        path = Path(os.environ["SECUREDD_DATA"]).expanduser()
        source = "$SECUREDD_DATA"
    else:
        return DEFAULT_ROOT
    if must_exist and not path.is_dir():
        raise DataError(
            f"the data root '{path}' (from {source}) does not exist or is not a folder; "
            "point it at the folder that holds your datasets (e.g. the one with MNIST/raw inside)"
        )
    return path
