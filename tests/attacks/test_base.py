"""The attack contract's helpers: reading settings from text and values, and where attacks sit among the layers."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import securedd
from securedd.attacks.base import Attack, AttackResult
from securedd.errors import ConfigError

SRC = Path(securedd.__file__).parent


@dataclass(frozen=True)
class _Settings:
    count: int = 1
    rate: float = 0.5
    on: bool = False
    limit: int | None = None
    budgets: tuple[float, ...] = (0.0,)
    names: tuple[str, ...] | None = None
    mode: str = "a"

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ConfigError(f"count must be >= 0; got {self.count}")


class _Toy(Attack[Any, AttackResult]):
    name = "toy"
    Params = _Settings


def test_settings_are_read_from_command_line_text_and_from_values():
    p = _Toy.parse_params({"count": "3", "rate": "1e-2", "on": "true", "limit": "none", "budgets": "0, 0.5,1",
                           "names": "a,b", "mode": "b"})
    assert p == _Settings(3, 0.01, True, None, (0.0, 0.5, 1.0), ("a", "b"), "b")
    assert _Toy.parse_params({"count": 2.0, "on": False, "limit": 7, "budgets": [1, 2]}) == _Settings(
        2, on=False, limit=7, budgets=(1.0, 2.0))
    assert _Toy.parse_params({"count": str(2**62 + 1)}).count == 2**62 + 1  # seeds stay exact
    assert _Toy(count=4).params.count == 4 and _Toy(_Settings(5)).params.count == 5


@pytest.mark.parametrize(("values", "words"), [
    ({"count": "2.5"}, "whole number"),
    ({"count": True}, "must be a whole number"),
    ({"on": "maybe"}, "true or false"),
    ({"rate": "fast"}, "must be a number"),
    ({"budgets": "0,x"}, "must be a number"),
    ({"mode": 3}, "must be text"),
    ({"count": -1}, "count must be >= 0"),
    ({"cuont": 1}, "Did you mean 'count'?"),
])
def test_bad_settings_name_the_setting_and_the_fix(values, words):
    with pytest.raises(ConfigError, match=words):
        _Toy.parse_params(values)


def test_a_params_object_of_another_type_is_refused():
    with pytest.raises(ConfigError, match="takes"):
        _Toy(object())


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_attacks_import_no_layer_above_them_and_the_layers_below_import_no_attack():
    above = ("securedd.api", "securedd.audit", "securedd.cli", "securedd.demo")
    for path in (SRC / "attacks").glob("*.py"):
        assert not [m for m in _imports(path) if m.startswith(above)], path
    for layer in ("federated", "secure", "distill", "evaluate", "models", "data"):
        for path in (SRC / layer).glob("*.py"):
            assert not [m for m in _imports(path) if m.startswith("securedd.attacks")], path
