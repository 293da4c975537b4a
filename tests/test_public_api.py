"""The public API: what ``import securedd`` offers, and that each name is what it says."""

from __future__ import annotations

import importlib.metadata
import inspect
from pathlib import Path

import securedd

SURFACE = ["Artifact", "EvalConfig", "RunConfig", "SecureddError", "__version__", "apply_overrides", "create_model",
           "distill", "evaluate", "list_datasets", "list_methods", "list_models", "load_artifact", "load_config",
           "load_dataset", "save_artifact", "save_grid"]


def test_the_surface_is_exactly_the_documented_names():
    assert sorted(securedd.__all__) == sorted(SURFACE)
    for name in SURFACE:
        assert hasattr(securedd, name), name


def test_every_public_function_is_typed_and_documented():
    for name in SURFACE:
        obj = getattr(securedd, name)
        if inspect.isfunction(obj):
            signature = inspect.signature(obj)
            assert obj.__doc__, f"securedd.{name} has no docstring"
            assert signature.return_annotation is not inspect.Signature.empty, f"securedd.{name} has no return type"
            assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name


def test_the_version_is_the_installed_distributions_and_the_package_is_typed():
    from securedd.version import __version__

    assert securedd.__version__ == __version__ == importlib.metadata.version("securedd")
    assert (Path(securedd.__file__).parent / "py.typed").is_file()
