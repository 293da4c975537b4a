"""The package's layering (docs/architecture.md): a module imports only from its own layer or lower ones.

Every ``import`` and ``from ... import`` of a ``securedd`` module anywhere in a file counts
(at the top, inside functions, lazily), except those under ``if TYPE_CHECKING:``, which
exist for annotations only and never run. A top-level package or module that is not in
``LAYERS`` fails the test too, so a new one has to be placed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import securedd

SRC = Path(securedd.__file__).resolve().parent

# lowest first; the same list as docs/architecture.md
LAYERS: list[set[str]] = [
    {"version", "errors", "registry", "rng", "interrupt", "profiling", "precision", "config", "store"},  # foundation
    {"data"},
    {"models", "artifacts"},
    {"training", "secure", "visualize", "presets"},
    {"distill", "evaluation"},
    {"api", "defences"},
    {"federated"},
    {"attacks"},
    {"audit"},
    {"demo", "__init__"},
    {"cli", "__main__"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """``securedd.distill.base`` -> ``distill``; ``securedd`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every securedd import that can run."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "securedd":  # from securedd import x: x is a unit of its own
                found.extend((node.lineno, f"securedd.{a.name}") for a in node.names)
            elif node.module.startswith("securedd."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("securedd."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        here = _unit(".".join(rel.parts).removesuffix(".__init__"))
        if here not in LAYER_OF:
            problems.append(f"{rel}: '{here}' has no layer; place it in LAYERS and docs/architecture.md")
            continue
        for line, module in _imports(ast.parse(path.read_text(), str(path))):
            there = _unit(module)
            if there not in LAYER_OF:
                continue  # a name imported from the package root, e.g. from securedd import __version__
            if LAYER_OF[there] > LAYER_OF[here]:
                problems.append(f"{rel}.py:{line}: {here} (layer {LAYER_OF[here]}) imports {module} "
                                f"(layer {LAYER_OF[there]})")
    return problems


def test_no_module_imports_from_a_higher_layer():
    problems = _violations()
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_the_check_sees_lazy_imports_and_skips_type_only_ones():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from securedd.cli import main\n"
                     "def f():\n    from securedd.audit.suite import run_audit\n")
    assert _imports(tree) == [(5, "securedd.audit.suite")]
