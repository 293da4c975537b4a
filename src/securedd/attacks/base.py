"""The attack contract and the ``ATTACKS`` registry.

An attack is configured once and applied to targets, as in torchattacks: construct it
with its settings (keywords, or a ``Params`` object), then call it on a target::

    attack = ATTACKS.get("deepfool")(norm="l2", steps=20)
    result = attack(RobustnessTarget(model, test))   # the same as attack.run(target)
    print(result.summary)
    json.dumps(result.to_dict())

Each attack subclasses :class:`Attack`, registers under its ``name`` with
``@ATTACKS.register(name)``, declares a frozen ``Params`` dataclass (checked in its
``__post_init__``, raising :class:`~securedd.errors.ConfigError`), says in its class
docstring who knows what (a ``Threat model:`` paragraph) and which paper it follows, and
returns a subclass of :class:`AttackResult` from :meth:`Attack.run`. The target is
whatever the attack needs to be pointed at (a model and data, an artifact, a federation);
each module defines its target type. Randomness comes from the settings' ``seed`` (or the
target's run seed), so the same settings and target give the same result.

Example:
    >>> from securedd.attacks import ATTACKS
    >>> cls = ATTACKS.get("deepfool")
    >>> cls(norm="l2", steps=20).params.steps
    20
    >>> cls.parse_params({"steps": "5", "epsilons": "0,0.5"}).epsilons
    (0.0, 0.5)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from securedd.config import parse_params
from securedd.errors import ConfigError
from securedd.registry import Registry

__all__ = ["ATTACKS", "Attack", "AttackResult", "NoParams", "list_attacks"]

TargetT = TypeVar("TargetT")
ResultT = TypeVar("ResultT", bound="AttackResult")

ATTACKS: Registry[type[Attack[Any, Any]]] = Registry("attack")

@dataclass(frozen=True)
class NoParams:
    """An attack without settings of its own."""


class AttackResult:
    """Base class of every attack's result.

    Subclasses are dataclasses holding what the attack found (tensors and arrays
    included); :meth:`to_dict` gives the JSON-ready view (numbers, strings, lists, dicts)
    and :attr:`summary` one line for people.
    """

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values."""
        raise NotImplementedError

    @property
    def summary(self) -> str:
        """One line saying what the attack achieved."""
        raise NotImplementedError


class Attack(Generic[TargetT, ResultT]):
    """Base class of attacks (see the module docstring)."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[Any]] = NoParams

    def __init__(self, params: Any = None, /, **values: Any) -> None:
        if params is None:
            params = self.parse_params(values)
        elif values:
            raise ConfigError(f"attack '{self.name}': give either a {self.Params.__name__} or keyword settings, "
                              "not both")
        elif not isinstance(params, self.Params):
            raise ConfigError(f"attack '{self.name}' takes {self.Params.__module__}.{self.Params.__qualname__} "
                              f"settings; got {type(params).__name__}")
        self.params = params

    @classmethod
    def parse_params(cls, values: Mapping[str, Any]) -> Any:
        """Build ``cls.Params`` from a dict, with a clear :class:`ConfigError` for unknown keys or bad values.

        Values may be Python values (from TOML, JSON or code) or the strings of a command
        line: ``"true"``/``"false"`` for flags, ``"none"`` for an optional setting left
        unset, comma-separated items for a tuple.
        """
        return parse_params(cls.Params, values, owner=f"attack '{cls.name}'", prefix="attack.")

    @classmethod
    def settings(cls) -> dict[str, Any]:
        """Every setting and its default (``None``: unset), in declaration order."""
        return {f.name: _default(f) for f in dataclasses.fields(cls.Params)}

    @classmethod
    def describe(cls) -> str:
        """The first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if (cls.__doc__ or "").strip() else ""

    def run(self, target: TargetT, *, progress: bool = False) -> ResultT:
        """Apply the attack to ``target`` and return its result."""
        raise NotImplementedError

    def __call__(self, target: TargetT, *, progress: bool = False) -> ResultT:
        return self.run(target, progress=progress)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.params).items())
        return f"{type(self).__name__}({values})"


def list_attacks() -> list[str]:
    """Registered attack names."""
    return ATTACKS.names()


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


