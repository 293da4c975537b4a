"""The distillation checkpoint: a run's state plus its identity, read back with clear errors.

A checkpoint (``<artifact>.ckpt``) holds the iteration reached, the synthetic tensors, the
optimiser's and generators' states and the loss history, plus the identity of the run that
wrote it: the method, dataset, IPC, seed and model, the whole resolved config (dotted keys)
and the SHA-256 of that config in canonical JSON. ``--resume`` continues a checkpoint only
for the same run: another config is a :class:`~securedd.errors.MismatchError` naming each
field that differs, old and new value; a truncated or corrupt file is an
:class:`~securedd.errors.ArtifactError` that says how to start afresh. Settings that do not
change the result (device, data folder, download, checkpoint interval, evaluation) are not
part of the identity.

Example:
    >>> from securedd.config import RunConfig, apply_overrides
    >>> from securedd.distill.base import method_settings
    >>> identity = run_identity(method_settings(apply_overrides(RunConfig(), ["method.name=dm", "method.ipc=1"])))
    >>> identity["config"]["method.ipc"], len(identity["config_sha256"])
    (1, 64)
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from securedd.errors import ArtifactError, MismatchError

__all__ = ["CHECKPOINT_FORMAT", "IDENTITY_FIELDS", "checkpoint_bytes", "corrupt_checkpoint", "read_checkpoint",
           "run_identity"]

CHECKPOINT_FORMAT = "securedd-distill-checkpoint/2"
IDENTITY_FIELDS = ("method.name", "data.name", "method.ipc", "seed", "model")
"""The fields named first when a checkpoint belongs to another run."""
_NOT_IDENTITY = ("device", "eval", "data.root", "data.download", "method.checkpoint_every")


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def run_identity(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The identity of a run from its resolved settings (:func:`~securedd.distill.base.method_settings`).

    Returns ``{"format", "config", "config_sha256"}``: the config as dotted keys, without
    the settings that do not change the result, and the SHA-256 of its canonical JSON.
    """
    config = {k: v for k, v in _flatten(settings).items()
              if not any(k == skip or k.startswith(skip + ".") for skip in _NOT_IDENTITY)}
    config = json.loads(_canonical(config))  # the values as they read back from the file
    digest = hashlib.sha256(_canonical(config).encode()).hexdigest()
    return {"format": CHECKPOINT_FORMAT, "config": config, "config_sha256": digest}


def checkpoint_bytes(iteration: int, tensors: Mapping[str, torch.Tensor], optimizer: Mapping[str, Any] | None,
                     generators: Mapping[str, torch.Tensor], history: list[float], identity: Mapping[str, Any]) -> bytes:
    """The checkpoint file's bytes (``torch.save``, loadable with ``weights_only=True``)."""
    buf = io.BytesIO()
    torch.save({
        "iteration": iteration,
        "tensors": {k: v.detach().cpu() for k, v in tensors.items()},
        "optimizer": dict(optimizer) if optimizer is not None else None,
        "generators": {k: v.cpu() for k, v in generators.items()},
        "history": list(history),
        "identity": json.dumps(dict(identity), sort_keys=True),
    }, buf)
    return buf.getvalue()


_AFRESH = "delete it, or run without --resume, to start afresh"


def corrupt_checkpoint(path: Path, reason: str) -> ArtifactError:
    """The error for a checkpoint that cannot be read back, saying how to recover."""
    return ArtifactError(f"{path}: the checkpoint is truncated or corrupt ({reason}); {_AFRESH}")


def read_checkpoint(path: Path, identity: Mapping[str, Any], iterations: int) -> dict[str, Any]:
    """Load the checkpoint at ``path`` and check it is this run's (``identity``) and well formed.

    Raises:
        ArtifactError: the file is truncated, corrupt, of another format or records no identity.
        MismatchError: another run wrote it; the message names each field that differs.
    """
    with open(path, "rb") as fh:  # not being able to open it is the file system's error, not damage
        try:
            state = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file: RuntimeError, EOFError, UnpicklingError, OSError (EINVAL)...
            raise corrupt_checkpoint(path, _first_line(exc)) from None
    if not isinstance(state, dict):
        raise corrupt_checkpoint(path, f"a {type(state).__name__}, not a checkpoint")
    _check_identity(path, state.get("identity"), identity)
    _check_state(path, state, iterations)
    return state


def _check_identity(path: Path, stored: object, identity: Mapping[str, Any]) -> None:
    try:
        old = json.loads(stored) if isinstance(stored, str) else None
    except (ValueError, RecursionError):
        old = None
    if not isinstance(old, dict) or old.get("format") != CHECKPOINT_FORMAT or not isinstance(old.get("config"), dict):
        raise ArtifactError(f"{path}: the checkpoint records no run identity (written by an older securedd, or "
                            f"damaged), so it cannot be checked against this run; {_AFRESH}")
    if old.get("config_sha256") == identity["config_sha256"]:
        return
    before, now = old["config"], identity["config"]
    keys = [k for k in IDENTITY_FIELDS if k in before or k in now]
    keys += sorted(k for k in set(before) | set(now) if k not in IDENTITY_FIELDS)
    missing = "(not set)"
    diffs = [f"{k} was {_show(before.get(k, missing))}, now {_show(now.get(k, missing))}"
             for k in keys if before.get(k, missing) != now.get(k, missing)]
    what = "; ".join(diffs) if diffs else "its config hash differs"
    raise MismatchError(f"{path} belongs to another run: {what}. Resume with the settings it was written with, "
                        f"or {_AFRESH}")


def _show(value: Any) -> str:
    return value if isinstance(value, str) and value == "(not set)" else json.dumps(value, default=str)


def _check_state(path: Path, state: Mapping[str, Any], iterations: int) -> None:
    it, history = state.get("iteration"), state.get("history")
    tensor_maps = [state.get("tensors"), state.get("generators")]
    if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it <= iterations:
        raise corrupt_checkpoint(path, f"iteration {it!r} is not between 0 and {iterations}")
    if not isinstance(history, list) or len(history) != it or not all(isinstance(v, float) for v in history):
        raise corrupt_checkpoint(path, "its loss history does not match its iteration")
    for tensors in tensor_maps:
        if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
            raise corrupt_checkpoint(path, "its tensors are missing")
    if state.get("optimizer") is not None and not isinstance(state.get("optimizer"), dict):
        raise corrupt_checkpoint(path, "its optimiser state is not a mapping")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
