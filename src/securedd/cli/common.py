"""Flags shared by the subcommands and turning them into a :class:`RunConfig`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tomli_w

from securedd.config import RunConfig, apply_overrides, load_config
from securedd.distill.base import method_settings
from securedd.errors import ConfigError
from securedd.presets import Preset, find_preset, list_presets

__all__ = ["add_data_flags", "add_run_flags", "build_config", "echo", "examples", "print_config", "resolve_config"]


def examples(*lines: str) -> str:
    """An ``--help`` epilog listing runnable examples."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", metavar="DIR", help="dataset folder (default: $SECUREDD_DATA, then ~/.cache/securedd/data)")
    p.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="leave out image files that cannot be read (corrupt, truncated, empty, too large, not files) "
                        "and log how many, instead of stopping at the first")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars, no resolved config")
    p.add_argument("--profile", action="store_true",
                   help="at the end, print where the time went: data, augmentation, forward, backward, optimiser, "
                        "scoring")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also show the logs and warnings of the libraries underneath (Flower, Ray, foolbox, torch)")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file (see configs/); replaces the preset")
    p.add_argument("--dataset", help="dataset name, imagefolder:PATH or npz:PATH (securedd list datasets)")
    p.add_argument("--method", help="distillation method (securedd list methods)")
    p.add_argument("--ipc", type=int, help="images per class")
    p.add_argument("--model", help="model the method uses (securedd list models)")
    p.add_argument("--seed", type=int, help="run seed (same seed, same artifact)")
    p.add_argument("--no-preset", action="store_true",
                   help="without --config, start from the built-in defaults instead of the method's preset "
                        "for this dataset and IPC (securedd list presets)")
    add_data_flags(p)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. method.iterations=3")


def build_config(args: argparse.Namespace) -> RunConfig:
    """Config file (or preset), then the dotted overrides, then the explicit flags (flags win)."""
    return resolve_config(args)[0]


def resolve_config(args: argparse.Namespace) -> tuple[RunConfig, Preset | None]:
    """The run config and the preset it started from, if any.

    Without ``--config`` (and without ``--no-preset``, on subcommands that have it), the
    preset of the requested method, dataset and IPC (``securedd list presets``; nearest IPC
    when there is no exact entry) is the base; the overrides and flags go over it. With
    ``--fast`` the fast profile's entry for the dataset is (its method, unless one is named).
    """
    overrides = _overrides(args)
    config_file = getattr(args, "config", None)
    if getattr(args, "fast", False):
        return _fast_config(args, overrides)
    cfg = apply_overrides(load_config(config_file), overrides)
    if config_file is not None or getattr(args, "no_preset", True):
        return cfg, None
    preset = find_preset(cfg.method.name, cfg.data.name, cfg.method.ipc)
    if preset is None:
        return cfg, None
    return apply_overrides(preset.config(), overrides), preset


def _fast_config(args: argparse.Namespace, overrides: list[str]) -> tuple[RunConfig, Preset]:
    """``--fast``: the fast profile's entry for the dataset and IPC, its method unless one is named."""
    if getattr(args, "config", None) is not None or getattr(args, "no_preset", False):
        raise ConfigError("--fast starts from the fast preset profile; drop --config and --no-preset, or drop --fast")
    cfg = apply_overrides(RunConfig(), overrides)
    named = any(o.partition("=")[0].strip() == "method.name" for o in overrides)
    entries = [p for p in list_presets(profile="fast") if p.dataset == cfg.data.name and (not named or
                                                                                         p.method == cfg.method.name)]
    if not entries:
        known = ", ".join(p.name for p in list_presets(profile="fast")) or "none"
        which = f"{cfg.method.name} on {cfg.data.name}" if named else cfg.data.name
        raise ConfigError(f"the fast profile has no entry for {which} (entries: {known}); drop --fast to start "
                          "from the published settings")
    method = min(entries, key=lambda p: (abs(p.ipc - cfg.method.ipc), p.ipc)).method  # the nearest entry's
    preset = find_preset(method, cfg.data.name, cfg.method.ipc, profile="fast")
    assert preset is not None  # entries holds one of this method's entries for the dataset
    return apply_overrides(preset.config(), overrides), preset


def _overrides(args: argparse.Namespace) -> list[str]:
    """The dotted overrides followed by the explicit flags, as ``key=value`` strings."""
    overrides = list(getattr(args, "overrides", None) or [])
    flag_keys = {"dataset": "data.name", "method": "method.name", "ipc": "method.ipc", "model": "model",
                 "seed": "seed", "device": "device", "data_root": "data.root"}
    for flag, key in flag_keys.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={_toml_value(value)}")
    if getattr(args, "download", False):
        overrides.append("data.download=true")
    if getattr(args, "skip_bad_images", False):
        overrides.append("data.skip_bad_images=true")
    return overrides


def _toml_value(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def echo(*parts: object, err: bool = False) -> None:
    """Print for people (the library itself never prints)."""
    print(*parts, file=sys.stderr if err else sys.stdout, flush=True)


def print_config(cfg: RunConfig, quiet: bool, preset: Preset | None = None, *, rounds: bool = False) -> None:
    """Print the config as the run will use it (the method's settings filled in).

    ``rounds``: a federation, whose rounds replace the method's iterations (not printed).
    """
    if quiet:
        return
    head = "# resolved config"
    if preset is not None:
        head += f"\n# preset: {preset.describe()}\n# (flags and key=value overrides win over the preset; --no-preset turns it off)"
    values = method_settings(cfg)
    if rounds:
        del values["method"]["iterations"]
    echo(head + "\n" + tomli_w.dumps(values).rstrip() + "\n")


def default_out(cfg: RunConfig) -> Path:
    name = Path(cfg.data.name.split(":", 1)[-1]).name or "data"
    return Path("out") / f"{name}_{cfg.method.name}_ipc{cfg.method.ipc}_seed{cfg.seed}.safetensors"
