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
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from securedd.errors import ConfigError, did_you_mean
from securedd.registry import Registry

__all__ = ["ATTACKS", "Attack", "AttackResult", "NoParams", "list_attacks"]

TargetT = TypeVar("TargetT")
ResultT = TypeVar("ResultT", bound="AttackResult")

ATTACKS: Registry[type[Attack[Any, Any]]] = Registry("attack")

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


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
        fields = {f.name: f for f in dataclasses.fields(cls.Params)}
        for key in values:
            if key not in fields:
                own = ", ".join(fields) or "none"
                raise ConfigError(f"attack '{cls.name}' has no setting '{key}'.{did_you_mean(key, fields)} "
                                  f"Its settings: {own}.")
        hints = typing.get_type_hints(cls.Params)
        kwargs = {key: _coerce(cls.name, key, value, hints[key]) for key, value in values.items()}
        try:
            return cls.Params(**kwargs)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"attack '{cls.name}': {exc}") from None

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


def _coerce(attack: str, key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` says (``int``, ``float``, ``bool``, ``str``, ``tuple[X, ...]``, ``X | None``)."""
    where = f"attack '{attack}': setting '{key}'"
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(attack, key, value, inner[0]) if len(inner) == 1 else value
    if typing.get_origin(hint) is tuple:
        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{where} must be a list; got {value!r}")
        return tuple(_coerce(attack, key, item, args[0]) for item in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where} must be true or false; got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number; got {value!r}")
        if hint is int and not isinstance(value, float):
            try:
                return int(value)  # exact, for 63-bit seeds too
            except (TypeError, ValueError):
                pass
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number; got {value!r}") from None
        if hint is int:
            if not number.is_integer():
                raise ConfigError(f"{where} must be a whole number; got {value!r}")
            return int(number)
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be text; got {value!r}")
        return value
    return value
