"""``securedd attack NAME``: run a registered attack (``securedd list attacks``).

There is one subcommand per attack in :data:`~securedd.attacks.ATTACKS`. Its settings are
the attack's ``Params``, given as ``attack.KEY=VALUE`` and checked by the attack's
``parse_params``; some also have flags (those of the earlier ``key-search`` and
``leakage`` subcommands among them), and a flag wins over ``attack.KEY=VALUE``. The
target's flags and what is printed come from the attack's entry in
:data:`~securedd.cli.attack_commands.COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from securedd.attacks import ATTACKS, Attack
from securedd.cli.attack_commands import COMMANDS, AttackCommand
from securedd.cli.common import echo, examples
from securedd.errors import ConfigError
from securedd.store import atomic_write_bytes, check_output

PREFIX = "attack."


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "attack", help="run an attack on an artifact, a trained network or a federation",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Attacks an adversary can run on distilled sets, on their transmission and on federated "
                    "distillation (securedd list attacks). Each takes its settings as attack.KEY=VALUE "
                    "(securedd attack NAME --help lists them with their defaults).",
        epilog=examples("securedd list attacks",
                        "securedd attack key-search secret.safetensors --budget 60",
                        "securedd attack leakage --dataset digits --model mlp attack.iterations=50 --grid leak.png"))
    kinds = p.add_subparsers(dest="attack", metavar="ATTACK", required=True)
    for name in ATTACKS.names():
        _add_attack(kinds, name)


def _add_attack(kinds: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    cls = ATTACKS.get(name)
    command = COMMANDS.get(name)() if name in COMMANDS else None
    description = command.description if command is not None else f"{cls.describe()} {_no_command(name)}"
    epilog = settings_text(cls) + ("\n\n" + examples(*command.examples) if command is not None else "")
    k = kinds.add_parser(name, help=_lower_first(cls.describe()), description=description, epilog=epilog,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    if command is not None:
        command.add_flags(k)
    if command is None or not command.run_config:
        k.add_argument("overrides", nargs="*", metavar="attack.KEY=VALUE", help="the attack's settings (below)")
    k.add_argument("--json", metavar="FILE", help="write the result as JSON")
    k.set_defaults(run=run)


def settings_text(cls: type[Attack[Any, Any]]) -> str:
    """The attack's settings and defaults, for its ``--help``."""
    values = cls.settings()
    if not values:
        return "settings: none"
    return f"settings ({PREFIX}KEY=VALUE, defaults shown):\n" + "\n".join(
        f"  {PREFIX}{key}={_show(value)}" for key, value in values.items())


def run(args: argparse.Namespace) -> int:
    for flag in ("json", "grid", "out"):  # the files an attack writes, checked before it runs
        if getattr(args, flag, None):
            check_output(getattr(args, flag), what=f"--{flag}")
    cls, command, params, config_overrides = resolve(args)
    target = command.target(args, config_overrides)
    result = cls(params).run(target, progress=not getattr(args, "quiet", False))
    command.report(args, params, target, result)
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps(command.payload(args, target, result), indent=2).encode())
        echo(f"wrote {args.json}")
    return 0


def resolve(args: argparse.Namespace) -> tuple[type[Attack[Any, Any]], AttackCommand, Any, list[str]]:
    """The attack, its command, its settings (defaults < ``attack.KEY=VALUE`` < flags) and the run config's overrides."""
    name = args.attack
    cls = ATTACKS.get(name)
    if name not in COMMANDS:
        raise ConfigError(f"attack '{name}': {_no_command(name)}")
    command = COMMANDS.get(name)()
    settings, config_overrides = split_overrides(getattr(args, "overrides", None) or [], command.run_config, cls)
    return cls, command, cls.parse_params({**settings, **command.flag_settings(args)}), config_overrides


def split_overrides(items: list[str], run_config: bool, cls: type[Attack[Any, Any]]) -> tuple[dict[str, str], list[str]]:
    """``attack.KEY=VALUE`` items as ``{KEY: VALUE}``, and the others (the run config's, where the command has one)."""
    settings: dict[str, str] = {}
    rest: list[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        if key.startswith(PREFIX) and sep:
            settings[key[len(PREFIX):]] = _unquote(value.strip())
        elif run_config and not key.startswith(PREFIX):
            rest.append(item)
        else:
            hint = f" Did you mean '{PREFIX}{item}'?" if sep and key in cls.settings() else ""
            raise ConfigError(f"securedd attack {cls.name} takes its settings as {PREFIX}KEY=VALUE; got "
                              f"'{item}'.{hint} Settings: {', '.join(cls.settings()) or 'none'}.")
    return settings, rest


def _no_command(name: str) -> str:
    if name == "lira":
        return ("No command-line target: LiRA trains its shadow models with the target's own training pipeline. "
                "Run it from Python, securedd.attacks.membership.Lira on a MembershipTarget with a pipeline "
                "(benchmarks/mia.py runs LiRA on distilled sets).")
    return f"No command-line target yet: run it from Python, securedd.attacks.ATTACKS.get('{name}')(...)(target)."


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:].rstrip(".")
