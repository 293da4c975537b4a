"""Run configuration: frozen dataclasses, TOML files and dotted command-line overrides.

A run is described by one :class:`RunConfig`. It can be built in Python, read from a TOML
file (``configs/*.toml``) and then adjusted with dotted overrides such as
``method.iterations=3`` or ``eval.models=convnet,lenet``. Keys under ``[method]`` that are
not fields of :class:`MethodConfig` are the method's own hyper-parameters and land in
``method.params``; the method validates them.

Example:
    >>> cfg = apply_overrides(RunConfig(), ["method.ipc=1", "seed=3", "method.embed_steps=0"])
    >>> cfg.method.ipc, cfg.seed, dict(cfg.method.params)
    (1, 3, {'embed_steps': 0})
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from securedd.errors import ConfigError, did_you_mean
from securedd.precision import check_precision

__all__ = [
    "Bound",
    "NAMED_BOUNDS",
    "DataConfig",
    "EvalConfig",
    "MethodConfig",
    "RunConfig",
    "apply_overrides",
    "check_device",
    "config_from_dict",
    "config_to_dict",
    "config_to_toml",
    "load_config",
    "coerce",
    "field_bound",
]


@dataclass(frozen=True)
class Bound:
    """The range a numeric setting must lie in: ``low <= value`` (``low < value`` when
    ``open_low``) and ``value <= high``. NaN lies in no range.

    Attach one to a config field with ``field(default=..., metadata={"bound": Bound(1)})``;
    fields without one get the bound of their name from :data:`NAMED_BOUNDS`, so every
    ``batch_real`` or learning rate of every method is checked the same way.

    >>> Bound(1).check(0, "method.batch_real")
    Traceback (most recent call last):
    securedd.errors.ConfigError: method.batch_real must be >= 1; got 0
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def describe(self) -> str:
        """The range in words, e.g. ``>= 1`` or ``> 0 and <= 1``."""
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {_plain(self.low)}")
        if self.high is not None:
            parts.append(f"<= {_plain(self.high)}")
        return " and ".join(parts) or "a number"

    def check(self, value: Any, where: str) -> None:
        """Raise a ConfigError naming ``where`` unless ``value`` (a number) lies in the range."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        high_ok = self.high is None or value <= self.high
        if not (low_ok and high_ok and value == value):  # NaN fails value == value
            raise ConfigError(f"{where} must be {self.describe()}; got {value!r}")


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


_AT_LEAST_1, _AT_LEAST_0 = Bound(1), Bound(0)

#: Bounds of settings by name, for every config section and every method, attack and
#: defence setting of that name (unless its field carries its own ``"bound"`` metadata).
#: Counts of things to sample or average are >= 1; counts of steps, iterations and
#: intervals are >= 0 (0 keeps the documented "off" or "default" meaning).
NAMED_BOUNDS: Mapping[str, Bound] = {
    "ipc": _AT_LEAST_1, "runs": _AT_LEAST_1, "batch_size": _AT_LEAST_1, "batch_real": _AT_LEAST_1,
    "batch_train": _AT_LEAST_1, "embed_batch": _AT_LEAST_1, "bn_batch": _AT_LEAST_1, "batch_syn_max": _AT_LEAST_1,
    "iterations": _AT_LEAST_0, "checkpoint_every": _AT_LEAST_0, "embed_steps": _AT_LEAST_0, "steps": _AT_LEAST_0,
    "epochs": _AT_LEAST_0, "inner_loop": _AT_LEAST_0, "outer_loop": _AT_LEAST_0, "batch_syn": _AT_LEAST_0,
    "chunk": _AT_LEAST_0, "cutmix": Bound(0, 1),
}

#: Name patterns with a bound: learning rates, momenta and weight decays are >= 0.
_PATTERN_BOUNDS = ((re.compile(r"^(lr|lr_.*|.*_lr|momentum|momentum_.*|weight_decay|weight_decay_.*)$"), _AT_LEAST_0),)


def field_bound(name: str, metadata: Mapping[str, Any] | None = None) -> Bound | None:
    """The bound of a setting: its field's ``metadata["bound"]`` (``None`` there: unchecked),
    else the bound of its name in :data:`NAMED_BOUNDS` or a learning-rate, momentum or
    weight-decay name (>= 0).

    >>> field_bound("batch_real"), field_bound("lr_img"), field_bound("seed")
    (Bound(low=1, high=None, open_low=False), Bound(low=0, high=None, open_low=False), None)
    """
    if metadata and "bound" in metadata:
        bound = metadata["bound"]
        return bound if isinstance(bound, Bound) else None
    if name in NAMED_BOUNDS:
        return NAMED_BOUNDS[name]
    for pattern, bound in _PATTERN_BOUNDS:
        if pattern.match(name):
            return bound
    return None


def _check_bound(name: str, value: Any, where: str, metadata: Mapping[str, Any] | None = None) -> None:
    bound = field_bound(name, metadata)
    if bound is not None:
        bound.check(value, where)


@dataclass(frozen=True)
class DataConfig:
    """Which dataset and where it lives.

    ``name`` is a registered dataset (``securedd list datasets``), ``imagefolder:PATH`` or
    ``npz:PATH``. ``root`` falls back to ``$SECUREDD_DATA`` then ``~/.cache/securedd/data``.
    ``skip_bad_images`` leaves out image files that cannot be read (corrupt, truncated,
    empty, too large, not files) with a logged count, instead of stopping at the first; it
    is recorded only when set, so the artifacts of other runs stay byte-identical.
    """

    name: str = "digits"
    root: str | None = None
    download: bool = False
    skip_bad_images: bool = field(default=False, metadata={"omit_default": True})


@dataclass(frozen=True)
class MethodConfig:
    """The distillation method, images per class and the method's own hyper-parameters."""

    name: str = "herding"
    ipc: int = 10
    iterations: int | None = None
    checkpoint_every: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol (REFERENCE section 2) as a user asks for it.

    These optimiser values are the defaults of training everywhere
    (:class:`securedd.training.TrainSettings` reads them from here). ``epochs=None`` means
    the protocol's default (:func:`securedd.training.default_epochs`: 1000 with
    augmentation, 300 without); the learning rate drops ten-fold once, half-way.
    ``cutmix=None`` means what the artifact asks for (IDC: CutMix with probability 0.5;
    others: none); a number sets the CutMix probability. ``compile=None`` (auto) trains
    through ``torch.compile`` when the work pays back the compilation
    (:func:`securedd.training.compiled.worth_compiling`); ``True``/``False`` force it.
    ``precision`` is ``fp32`` (the protocol) or ``bf16`` mixed precision
    (:mod:`securedd.precision`: about 1.7x as fast on CPUs with bfloat16 instructions).
    """

    models: tuple[str, ...] = ("convnet",)
    runs: int = 3
    epochs: int | None = None
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    dsa: bool = True
    dsa_strategy: str | None = None
    cutmix: float | None = None
    compile: bool | None = None
    precision: str = field(default="fp32", metadata={"omit_default": True})

    def __post_init__(self) -> None:
        check_precision(self.precision, "eval.precision")


@dataclass(frozen=True)
class RunConfig:
    """Everything one distillation run needs; stored in the artifact as resolved."""

    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    model: str = "convnet"
    seed: int = 0
    device: str = "cpu"
    eval: EvalConfig = field(default_factory=EvalConfig)


_SECTIONS = {"data": DataConfig, "method": MethodConfig, "eval": EvalConfig}


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, JSON/TOML-friendly dict of a config dataclass (``None`` values dropped, and
    the default values of fields whose metadata says ``omit_default``)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.metadata.get("omit_default") and value == f.default:
            continue
        if dataclasses.is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        if value is not None:
            out[f.name] = value
    return out


def config_to_toml(cfg: RunConfig) -> str:
    """The resolved configuration as TOML text (what the command line prints)."""
    return tomli_w.dumps(config_to_dict(cfg))


T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _field_metadata(cls: type) -> dict[str, Mapping[str, Any]]:
    return {f.name: f.metadata for f in dataclasses.fields(cls)}


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` (from TOML, JSON, code or a command line) as ``annotation`` says, or a ConfigError naming ``where``.

    Handles ``int`` (exact, for 63-bit seeds too; ``"5.0"`` is 5), ``float``, ``bool``
    (true/false, yes/no, on/off, 1/0), ``str``, ``tuple[X, ...]`` (a list, or
    comma-separated text) and ``X | None`` (``None``, ``"none"``, ``"null"`` or ``""``).
    The one coercer of run configs and of method, attack, defence and evaluation settings.

    >>> coerce("0,0.5", tuple[float, ...], "attack.epsilons"), coerce("none", int | None, "seed")
    ((0.0, 0.5), None)
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], where) if len(inner) == 1 else value
    if origin is tuple:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{where} must be a list (e.g. a,b); got {value!r}")
        if args and Ellipsis not in args:  # fixed length: tuple[int, int]
            if len(items) != len(args):
                raise ConfigError(f"{where} must be a list of {len(args)}; got {value!r}")
            return tuple(coerce(item, arg, where) for item, arg in zip(items, args, strict=True))
        return tuple(coerce(item, args[0] if args else str, where) for item in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where} must be true or false; got {value!r}")
    if annotation in (int, float):
        return _number(value, annotation, where)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be text; got {value!r}")
        return value
    return value


def _number(value: Any, annotation: type, where: str) -> int | float:
    kind = "a whole number (int)" if annotation is int else "a number (float)"
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be {kind}; got {value!r}")
    if annotation is int and not isinstance(value, float):
        try:
            return int(value)  # exact, for 63-bit seeds too
        except (TypeError, ValueError):
            pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be {kind}; got {value!r}") from None
    if annotation is int:
        if not number.is_integer():
            raise ConfigError(f"{where} must be {kind}; got {value!r}")
        return int(number)
    return number


def parse_params(cls: type[T], values: Mapping[str, Any], *, owner: str, prefix: str,
                 common: Sequence[str] = ()) -> T:
    """Build the frozen dataclass ``cls`` from ``values``, coercing each to its field's type.

    ``owner`` names what the settings belong to (``"method 'dc'"``) and ``prefix`` how a
    user writes them (``"method."``) in the errors; ``common`` lists further valid keys that
    belong elsewhere, offered in the "did you mean" of an unknown key. Shared by methods,
    attacks and defences.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class P:
    ...     lr: float = 0.1
    ...     steps: int = 10
    >>> parse_params(P, {"lr": "0.5"}, owner="method 'x'", prefix="method.")
    P(lr=0.5, steps=10)
    """
    types_ = _field_types(cls)
    kind, _, name = owner.partition(" ")
    for key in values:
        if key not in types_:
            raise ConfigError(
                f"{owner} has no setting '{key}'.{did_you_mean(key, [*common, *types_])} "
                + (f"Settings of every {kind}: {', '.join(common)}; {name.strip(chr(39))}'s own: " if common
                   else "Its settings: ")
                + f"{', '.join(types_) or 'none'}."
            )
    kwargs = {key: coerce(value, types_[key], f"{prefix}{key}") for key, value in values.items()}
    metadata = _field_metadata(cls)
    for key, value in kwargs.items():
        _check_bound(key, value, f"{prefix}{key}", metadata[key])
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {exc}") from None


def _build_section(cls: type, values: Mapping[str, Any], section: str) -> Any:
    types_ = _field_types(cls)
    metadata = _field_metadata(cls)
    kwargs: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, value in values.items():
        if key in types_ and key != "params":
            kwargs[key] = coerce(value, types_[key], f"{section}.{key}")
            _check_bound(key, kwargs[key], f"{section}.{key}", metadata[key])
        elif cls is MethodConfig and key == "params" and isinstance(value, Mapping):
            params.update(value)
        elif cls is MethodConfig:
            params[key] = value  # a method hyper-parameter; the method checks its type
        else:
            raise ConfigError(
                f"unknown setting '{section}.{key}'.{did_you_mean(key, types_)} "
                f"Valid keys in [{section}]: {', '.join(types_)}."
            )
    if cls is MethodConfig:
        for key, value in params.items():  # range-checked now, before any data is read
            _check_bound(key, value, f"{section}.{key}")
        kwargs["params"] = params
    return cls(**kwargs)


def _from_dict(values: Mapping[str, Any]) -> RunConfig:
    top_types = _field_types(RunConfig)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in _SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"[{key}] must be a table of settings, got {value!r}")
            kwargs[key] = _build_section(_SECTIONS[key], value, key)
        elif key in top_types:
            kwargs[key] = coerce(value, top_types[key], key)
        else:
            raise ConfigError(
                f"unknown setting '{key}'.{did_you_mean(key, top_types)} "
                f"Valid top-level keys: {', '.join(top_types)}."
            )
    return RunConfig(**kwargs)


def config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from nested settings (as in a TOML file), checking every key and type."""
    return _from_dict(values)


def load_config(path: str | Path | None = None) -> RunConfig:
    """Read a TOML file into a :class:`RunConfig` (defaults when ``path`` is None)."""
    if path is None:
        return RunConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass an existing TOML file to --config")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file '{path}' nests its arrays or tables too deeply to be a config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}' cannot be read as UTF-8 text: {exc}") from None
    _check_depth(values, f"config file '{path}'")
    return _from_dict(values)


#: The deepest nesting of tables and arrays a config may have (a valid one needs 3 at most:
#: ``[method.params]`` holding a list).
MAX_DEPTH = 16


def _check_depth(values: Any, what: str) -> None:
    """Refuse ``values`` nested deeper than :data:`MAX_DEPTH` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(values, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"{what} nests tables or arrays more than {MAX_DEPTH} deep; no setting needs that")
        children = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)


def check_device(name: str) -> str:
    """Return ``name`` if torch can use that device here, else raise a ConfigError saying what to use."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"'{name}' is not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' is not available on this machine (no CUDA GPU); use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device '{name}' does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device type '{device.type}' is not supported; use cpu or cuda")
    return name


def _parse_value(text: str) -> Any:
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        raise ConfigError(f"override value '{text[:40]}' nests arrays or tables too deeply to be a setting") from None
    _check_depth(value, f"override value '{text[:40]}'")
    return value


def apply_overrides(cfg: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """Apply ``key=value`` overrides (dotted keys, TOML-style values) to ``cfg``."""
    values = config_to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. method.ipc=10)")
        key, text = (part.strip() for part in item.split("=", 1))
        parts = key.split(".")
        if parts[0] in _SECTIONS and len(parts) == 2:
            values.setdefault(parts[0], {})[parts[1]] = _parse_value(text)
        elif parts[0] == "method" and len(parts) == 3 and parts[1] == "params":
            values.setdefault("method", {}).setdefault("params", {})[parts[2]] = _parse_value(text)
        elif len(parts) == 1:
            values[key] = _parse_value(text)
        else:
            raise ConfigError(f"override key '{key}' is not of the form section.key (e.g. method.iterations)")
    return _from_dict(values)
