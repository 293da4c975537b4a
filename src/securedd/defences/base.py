"""The defence contract and its registry.

A defence is configured at construction (a frozen ``Params`` dataclass), acts at one
``stage`` and documents its threat model (whom it protects against, and what it does not
promise) in its docstring:

- ``client``: inside a data owner's round. :meth:`Defence.hooks` changes the round
  through the run's :class:`~securedd.distill.hooks.Hooks` (e.g. LDPO-RLD's label
  targets); :meth:`Defence.release` changes what leaves the client (e.g. LocalDP noise on
  the update); :meth:`Defence.ledger` says what the run spent.
- ``server``: how the server combines replies (:meth:`Defence.aggregate`).
- ``artifact``: what a receiver checks before using a file (:meth:`Defence.check`).

>>> d = make_defence("ldpo-rld", k=3)
>>> d.stage, d.params.k, DEFENCES.get(d.name) is type(d)
('client', 3, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch

from securedd.config import parse_params
from securedd.defences.accounting import PrivacyLedger
from securedd.distill.hooks import Hooks
from securedd.errors import ConfigError
from securedd.registry import Registry

__all__ = ["DEFENCES", "STAGES", "Defence", "defence_from_dict", "list_defences", "make_defence"]

STAGES = ("client", "server", "artifact")
P = TypeVar("P")


class Defence(Generic[P]):
    """Base class of defences (see the module docstring)."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[Any]]
    stage: ClassVar[str] = "client"

    def __init__(self, params: P | None = None) -> None:
        self.params: P = params if params is not None else self.Params()

    @classmethod
    def parse_params(cls, values: Mapping[str, Any]) -> P:
        """``cls.Params`` from a dict, with a clear error for unknown keys or bad types."""
        params: P = parse_params(cls.Params, values, owner=f"defence '{cls.name}'", prefix="")
        return params

    def hooks(self) -> Hooks:
        """What the defence changes inside a client's round (nothing by default)."""
        return Hooks()

    def release(self, update: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """What leaves the client in place of its ``update`` (``S_i - S^g``); unchanged by default."""
        return update

    def ledger(self, rounds: int, *, delta: float = 1e-5, accountant: str = "rdp") -> PrivacyLedger:
        """The privacy spent by ``rounds`` rounds (no formal mechanism by default)."""
        return PrivacyLedger("none", rounds=rounds)

    def aggregate(self, stack: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Server stage: one set from the stacked replies (z, N, C, H, W) and their weights (z,)."""
        raise ConfigError(f"defence '{self.name}' acts at the {self.stage} stage, not in aggregation")

    def check(self, artifact: str | Path) -> None:
        """Artifact stage: raise unless the file may be used."""
        raise ConfigError(f"defence '{self.name}' acts at the {self.stage} stage, not on artifact files")

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **params}``: what a federation's record and an artifact store."""
        return {"name": self.name, **dataclasses.asdict(self.params)}  # type: ignore[call-overload]


DEFENCES: Registry[type[Defence[Any]]] = Registry("defence")


def list_defences() -> list[str]:
    """Registered defence names."""
    return DEFENCES.names()


def make_defence(name: str, **params: Any) -> Defence[Any]:
    """The defence registered as ``name``, with ``params`` (checked against its ``Params``)."""
    cls = DEFENCES.get(name)
    return cls(cls.parse_params(params))


def defence_from_dict(values: Mapping[str, Any] | None) -> Defence[Any] | None:
    """The defence :meth:`Defence.to_dict` described, or ``None`` for ``None`` / name ``none``."""
    if values is None or values.get("name", "none") == "none":
        return None
    rest = {k: v for k, v in values.items() if k != "name"}
    return make_defence(str(values["name"]), **rest)
