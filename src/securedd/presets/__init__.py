"""Presets: each method's published hyper-parameters per dataset and images per class.

One TOML file per method ships inside this package, ``<method>.toml`` (``dc.toml``,
``dsa.toml``, ``dm.toml``...). A file holds one table per setting and an optional
``[defaults]`` table that every setting of the file starts from::

    # where the numbers come from (paper, table, reference code)
    [defaults]
    iterations = 1000        # plain keys: the method's settings (method.<key>) ...
    model = "convnet"        # ... except `model`, the network the method uses
    [defaults.eval]          # sub-table `eval`: evaluation settings (eval.<key>)
    dsa = true

    [mnist.ipc10]            # [<dataset>.ipc<N>]: one dataset at N images per class
    lr_img = 0.1

Two profiles ship: ``published`` (the files above: each paper's own settings) and ``fast``
(``fast/<method>.toml``, the same format: the method and budget that measured best within
30 minutes of distillation on a 2-core CPU, ``benchmarks/time_to_accuracy.py``; only the
datasets and IPCs measured have an entry). ``securedd distill --fast`` starts from the
fast profile.

The loader knows no method's settings: ``method.*`` keys are handed to the method, whose
``parse_params`` validates them when a run starts. It checks everything else: TOML syntax,
dataset names, table names, ``model``, ``eval.*`` and ``iterations``/``checkpoint_every``.

:func:`find_preset` picks the entry for a (method, dataset, IPC); an IPC without an entry
gets the nearest IPC's entry of that dataset (ties go to the smaller IPC). The command line
applies it under the user's own overrides and flags when no ``--config`` is given.

Example:
    >>> preset = find_preset("dsa", "mnist", 20)
    >>> preset.name, preset.nearest, preset.values["method"]["iterations"]
    ('dsa/mnist/ipc10', True, 1000)
    >>> cfg = preset.config()
    >>> cfg.method.name, cfg.method.ipc, cfg.data.name
    ('dsa', 20, 'mnist')
"""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from securedd.config import MethodConfig, RunConfig, config_from_dict, config_to_dict
from securedd.errors import ConfigError, UnknownNameError, did_you_mean

__all__ = ["PROFILES", "Preset", "find_preset", "list_presets", "load_preset_file", "preset_methods"]

PROFILES = ("published", "fast")
"""The preset profiles: the papers' settings, and the fastest measured route to a good set."""

_IPC_TABLE = re.compile(r"ipc([1-9][0-9]*)")
_RUN_KEYS = ("model",)  # plain keys of a setting that are run settings, not method settings
_SUB_TABLES = ("eval",)  # sub-tables of a setting: RunConfig sections


@dataclass(frozen=True)
class Preset:
    """One entry of a preset file: the settings of ``method`` on ``dataset`` at ``ipc``.

    Attributes:
        method: the method (the file's name).
        dataset: a registered dataset name.
        ipc: the IPC of the entry.
        values: nested settings, ``{"method": {...}, "model": ..., "eval": {...}}``, with
            the file's ``[defaults]`` merged in.
        source: where the file is, for messages (``securedd/presets/dc.toml``).
        requested_ipc: the IPC asked for, when :func:`find_preset` fell back to the
            nearest entry; ``None`` when the entry is exact.
        profile: one of :data:`PROFILES`.
    """

    method: str
    dataset: str
    ipc: int
    values: Mapping[str, Any]
    source: str
    requested_ipc: int | None = None
    profile: str = "published"

    @property
    def name(self) -> str:
        """``method/dataset/ipcN`` of the entry (``fast:`` in front for the fast profile)."""
        return ("" if self.profile == "published" else f"{self.profile}:") + f"{self.method}/{self.dataset}/ipc{self.ipc}"

    @property
    def nearest(self) -> bool:
        """True when the entry is the nearest one to another IPC that has none."""
        return self.requested_ipc is not None and self.requested_ipc != self.ipc

    def describe(self) -> str:
        """One line for people: which entry, from which file, and whether it is a fallback."""
        text = f"{self.name} from {self.source}"
        if self.nearest:
            text += f" (no ipc{self.requested_ipc} entry; using the nearest IPC, {self.ipc})"
        return text

    def apply(self, cfg: RunConfig) -> RunConfig:
        """``cfg`` with this preset's method, dataset, IPC and settings written over it."""
        values = config_to_dict(cfg)
        method = values.setdefault("method", {})
        if method.get("name") != self.method:
            method["params"] = {}  # another method's settings do not carry over
        method.update(name=self.method, ipc=self.requested_ipc or self.ipc)
        values.setdefault("data", {})["name"] = self.dataset
        method_fields = {f.name for f in dataclasses.fields(MethodConfig)} - {"params"}
        for key, value in self.values.get("method", {}).items():
            if key in method_fields:
                method[key] = value
            else:
                method.setdefault("params", {})[key] = value
        for key, value in self.values.items():
            if key in _SUB_TABLES:
                values.setdefault(key, {}).update(value)
            elif key != "method":
                values[key] = value
        try:
            return config_from_dict(values)
        except ConfigError as exc:
            raise ConfigError(f"preset {self.name} in {self.source}: {exc}") from None

    def config(self) -> RunConfig:
        """A full run configuration for this preset (defaults for everything else)."""
        return self.apply(RunConfig())


def _split_setting(table: Mapping[str, Any], where: str, source: str) -> dict[str, Any]:
    """A setting table of a file as nested values: method keys, run keys and sub-tables apart."""
    from securedd.models import MODELS

    values: dict[str, Any] = {"method": {}}
    for key, value in table.items():
        if isinstance(value, Mapping):
            if key not in _SUB_TABLES:
                raise ConfigError(
                    f"preset file '{source}': [{where}.{key}]: a setting may hold only these sub-tables: "
                    f"{', '.join(_SUB_TABLES)}.{did_you_mean(key, _SUB_TABLES)} Method settings go directly in [{where}]."
                )
            values[key] = dict(value)
        elif key == "model" and (not isinstance(value, str) or value not in MODELS):
            raise ConfigError(
                f"preset file '{source}': [{where}] model = {value!r} is not a registered model."
                f"{did_you_mean(str(value), MODELS.names())} See securedd list models."
            )
        elif key in _RUN_KEYS:
            values[key] = value
        else:
            values["method"][key] = value
    return values


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def load_preset_file(path: str | Path, *, source: str | None = None, profile: str = "published") -> list[Preset]:
    """Read and check one preset file; return its entries sorted by dataset and IPC.

    The method is the file's name (``dm.toml`` holds ``dm`` presets). Method settings are
    not checked here (the method does that); everything else is.

    Raises:
        ConfigError: the file is missing, not TOML, or not in the preset format; the
            message names the file and the table at fault.
    """
    from securedd.data import DATASETS

    path = Path(path)
    source = source or str(path)
    method = path.stem.lower()
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"preset file '{source}' does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset file '{source}' is not valid TOML: {exc}") from None
    hint = "tables must be [defaults] or [<dataset>.ipc<N>], e.g. [mnist.ipc10]"
    defaults = tables.pop("defaults", {})
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"preset file '{source}': 'defaults' must be a table ([defaults]); {hint}")
    base = _split_setting(defaults, "defaults", source)
    presets = []
    for dataset, entries in tables.items():
        if not isinstance(entries, Mapping):
            raise ConfigError(f"preset file '{source}': top-level key '{dataset}' is not a table; {hint}")
        if dataset not in DATASETS:
            raise ConfigError(
                f"preset file '{source}': [{dataset}] is not a registered dataset."
                f"{did_you_mean(dataset, DATASETS.names())} Valid datasets: {', '.join(DATASETS.names())}."
            )
        for name, table in entries.items():
            match = _IPC_TABLE.fullmatch(name)
            if match is None or not isinstance(table, Mapping):
                raise ConfigError(f"preset file '{source}': [{dataset}.{name}] is not a setting table; {hint}")
            values = _merge(base, _split_setting(table, f"{dataset}.{name}", source))
            preset = Preset(method, dataset, int(match.group(1)), values, source, profile=profile)
            preset.config()  # checks model, eval.* and the method's loop fields now, naming the file
            presets.append(preset)
    return sorted(presets, key=lambda p: (p.dataset, p.ipc))


def _shipped() -> Traversable:
    return resources.files(__name__)


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise UnknownNameError(f"unknown preset profile '{profile}'.{did_you_mean(profile, PROFILES)} "
                               f"Profiles: {', '.join(PROFILES)}.")


def _folder_files(root: str | Path | None, profile: str = "published") -> dict[str, tuple[Path | Traversable, str]]:
    """``method -> (file, source label)`` of the preset files of ``profile`` in ``root`` (default: the
    shipped ones); the fast profile's files are in the ``fast`` sub-folder."""
    _check_profile(profile)
    folder: Path | Traversable = _shipped() if root is None else Path(root)
    sub = "" if profile == "published" else f"{profile}/"
    if sub:
        folder = folder / profile
        if not folder.is_dir():
            return {}
    files = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".toml") and entry.is_file():
            label = f"securedd/presets/{sub}{entry.name}" if root is None else str(entry)
            files[entry.name[: -len(".toml")].lower()] = (entry, label)
    return files


@functools.cache
def _load(method: str, root: str | None, profile: str = "published") -> tuple[Preset, ...]:
    files = _folder_files(root, profile)
    if method not in files:
        return ()
    entry, label = files[method]
    with resources.as_file(entry) as path:
        return tuple(load_preset_file(path, source=label, profile=profile))


def preset_methods(*, root: str | Path | None = None, profile: str = "published") -> list[str]:
    """Methods that have a preset file of ``profile`` (in ``root``; default: the files shipped with securedd)."""
    return sorted(_folder_files(root, profile))


def list_presets(method: str | None = None, *, root: str | Path | None = None,
                 profile: str = "published") -> list[Preset]:
    """Every preset entry of ``profile`` (of ``method``, or of all methods), sorted by method, dataset and IPC.

    Raises:
        UnknownNameError: ``method`` has no preset file, or ``profile`` is unknown.
        ConfigError: a preset file is malformed.
    """
    methods = preset_methods(root=root, profile=profile)
    if method is not None:
        if method.lower() not in methods:
            raise UnknownNameError(
                f"no presets for method '{method}'.{did_you_mean(method, methods)} "
                f"Methods with presets: {', '.join(methods) or 'none'}."
            )
        methods = [method.lower()]
    key = None if root is None else str(root)
    return [p for m in methods for p in _load(m, key, profile)]


def find_preset(method: str, dataset: str, ipc: int, *, root: str | Path | None = None,
                profile: str = "published") -> Preset | None:
    """The preset of ``method`` on ``dataset`` at ``ipc``, or ``None`` when there is none.

    An IPC without an entry gets the entry of the nearest IPC of that dataset (ties go to
    the smaller IPC); the returned preset then has ``nearest`` set and ``requested_ipc``
    = ``ipc``, and :meth:`Preset.apply` keeps ``ipc``.

    Raises:
        ConfigError: the method's preset file is malformed.
    """
    _check_profile(profile)
    key = None if root is None else str(root)
    entries = [p for p in _load(method.lower(), key, profile) if p.dataset == dataset.lower()]
    if not entries:
        return None
    best = min(entries, key=lambda p: (abs(p.ipc - ipc), p.ipc))
    return dataclasses.replace(best, requested_ipc=ipc if best.ipc != ipc else None)
