"""One generic registry: register things under short names, get them back with a helpful error.

Example:
    >>> from securedd.registry import Registry
    >>> shapes = Registry("shape")
    >>> @shapes.register("square")
    ... def square(n: int) -> int:
    ...     return n * n
    >>> shapes.get("square")(3)
    9
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from securedd.errors import UnknownNameError, did_you_mean

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """A name -> object mapping with ``register`` as a decorator and a "did you mean" lookup."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, *, help: str | None = None) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name`` (lower case, unique)."""
        key = name.lower()

        def decorator(obj: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is already registered")
            self._items[key] = obj
            doc = help if help is not None else (getattr(obj, "__doc__", None) or "")
            self._help[key] = doc.strip().splitlines()[0] if doc.strip() else ""
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the object registered as ``name``; raise :class:`UnknownNameError` otherwise."""
        key = name.lower()
        if key not in self._items:
            valid = ", ".join(self.names())
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'.{did_you_mean(name, self._items)} "
                f"Valid {self.kind}s: {valid}."
            )
        return self._items[key]

    def unregister(self, name: str) -> T:
        """Remove and return ``name`` (for plugins and tests that register temporarily)."""
        obj = self.get(name)
        del self._items[name.lower()], self._help[name.lower()]
        return obj

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def describe(self, name: str) -> str:
        """The first line of the registered object's docstring (or the ``help`` given)."""
        self.get(name)
        return self._help[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
