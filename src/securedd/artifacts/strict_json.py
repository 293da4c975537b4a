"""JSON from untrusted files: bounded nesting, no duplicate keys, clean errors.

:func:`json.loads` recurses once per nesting level, so a few kilobytes of ``[[[[...``
raise :class:`RecursionError`; and it keeps the last of two equal keys silently, so a
prepended duplicate key changes nothing a reader can see. :func:`loads_strict` measures the
nesting and the item count before parsing (strings do not count) and refuses both with a
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
from typing import Any

import numpy as np

from securedd.errors import ArtifactError, SecureddError

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "json_shape", "loads_strict", "nesting_depth"]

MAX_DEPTH = 64
MAX_ITEMS = 1_000_000
_BLOCK = 2**18
_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")
_OPEN, _CLOSE = (ord("["), ord("{")), (ord("]"), ord("}"))


class _DuplicateKeyError(ValueError):
    pass


def json_shape(text: str | bytes) -> tuple[int, int]:
    """``(depth, items)`` of JSON text: the deepest ``[``/``{`` nesting and the number of
    commas, both outside strings; vectorised, in bounded blocks, without parsing."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    deepest = level = items = 0
    in_string, last_plain = 0, -1  # quote parity, and the last byte before this block that is not a backslash
    for lo in range(0, len(raw), _BLOCK):
        codes = np.frombuffer(raw, dtype=np.uint8, count=min(_BLOCK, len(raw) - lo), offset=lo)
        index = np.arange(lo, lo + len(codes), dtype=np.int64)
        plain = np.maximum.accumulate(np.concatenate(([last_plain], np.where(codes == _BACKSLASH, -1, index))))
        escaped = (index - 1 - plain[:-1]) % 2 == 1  # after an odd run of backslashes
        quotes = (codes == _QUOTE) & ~escaped
        outside = (np.cumsum(quotes, dtype=np.int64) + in_string) % 2 == 0
        opens = np.isin(codes, _OPEN) & outside
        closes = np.isin(codes, _CLOSE) & outside
        levels = level + np.cumsum(opens.astype(np.int64) - closes.astype(np.int64))
        deepest, level = max(deepest, int(levels.max())), int(levels[-1])
        items += int(np.count_nonzero((codes == _COMMA) & outside))
        in_string = int(not outside[-1])
        last_plain = int(plain[-1])
    return deepest, items


def nesting_depth(text: str | bytes) -> int:
    """The deepest ``[``/``{`` nesting of JSON text, not counting brackets inside strings."""
    return json_shape(text)[0]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def loads_strict(text: str, *, what: str, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS,
                 error: type[SecureddError] = ArtifactError) -> Any:
    """Parse ``text`` as JSON, refusing deep nesting and repeated keys.

    Args:
        text: the JSON text.
        what: names the source in error messages (a file, or a file and a field).
        max_depth: the deepest ``[``/``{`` nesting allowed.
        max_items: the most commas (outside strings) allowed, bounding the objects parsing
            would build.
        error: the exception class raised (default :class:`ArtifactError`).

    Raises:
        SecureddError: (``error``) invalid JSON, nesting deeper than ``max_depth``, more
            than ``max_items`` items, or a key repeated within one object.
    """
    depth, items = json_shape(text)
    if depth > max_depth:
        raise error(f"{what}: the JSON is nested {depth} levels deep (at most {max_depth} allowed); refusing it")
    if items > max_items:
        raise error(f"{what}: the JSON holds {items + 1} items (at most {max_items} allowed); refusing it")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKeyError as exc:
        raise error(f"{what}: the JSON repeats the key {str(exc.args[0])!r}; refusing it") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what}: not valid JSON ({exc})") from None
    except RecursionError:  # unreachable after the depth check; kept so no input can escape as a traceback
        raise error(f"{what}: the JSON is nested too deeply; refusing it") from None
