"""JSON from untrusted files: bounded nesting, no duplicate keys, clean errors.

:func:`json.loads` recurses once per nesting level, so a few kilobytes of ``[[[[...``
raise :class:`RecursionError`; and it keeps the last of two equal keys silently, so a
prepended duplicate key changes nothing a reader can see. :func:`loads_strict` measures the
nesting before parsing (strings do not count) and refuses both with a
:class:`~securedd.errors.SecureddError` that names what was read.

Example:
    >>> loads_strict('{"a": [1, 2]}', what="x.json")
    {'a': [1, 2]}
    >>> loads_strict('{"a": 1, "a": 2}', what="x.json")
    Traceback (most recent call last):
    ...
    securedd.errors.ArtifactError: x.json: the JSON repeats the key 'a'; refusing it
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from securedd.errors import ArtifactError, SecureddError

__all__ = ["MAX_DEPTH", "loads_strict", "nesting_depth"]

MAX_DEPTH = 64
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class _DuplicateKeyError(ValueError):
    pass


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of ``text``, not counting brackets inside strings."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub('""', text)).encode("ascii")
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def loads_strict(text: str, *, what: str, max_depth: int = MAX_DEPTH,
                 error: type[SecureddError] = ArtifactError) -> Any:
    """Parse ``text`` as JSON, refusing deep nesting and repeated keys.

    Args:
        text: the JSON text.
        what: names the source in error messages (a file, or a file and a field).
        max_depth: the deepest ``[``/``{`` nesting allowed.
        error: the exception class raised (default :class:`ArtifactError`).

    Raises:
        SecureddError: (``error``) invalid JSON, nesting deeper than ``max_depth``, or a key
            repeated within one object.
    """
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{what}: the JSON is nested {depth} levels deep (at most {max_depth} allowed); refusing it")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKeyError as exc:
        raise error(f"{what}: the JSON repeats the key {str(exc.args[0])!r}; refusing it") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what}: not valid JSON ({exc})") from None
    except RecursionError:  # unreachable after the depth check; kept so no input can escape as a traceback
        raise error(f"{what}: the JSON is nested too deeply; refusing it") from None
