"""The SecDD key: the target network's architecture and initialisation seed.

A SecDD set trains one network, the one rebuilt from its key, and the key never goes into
the artifact. The seed is drawn from the operating system's randomness (not from the run's
seed, which the artifact records), and the key file is written readable by its owner only.

Example:
    >>> import tempfile
    >>> key = new_key("lenet")
    >>> path = save_key(key, tempfile.mkdtemp() + "/target.key")
    >>> load_key(path) == key
    True
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from securedd.artifacts import Artifact, atomic_write_bytes
from securedd.errors import ConfigError, MismatchError
from securedd.evaluate.train_eval import replay_steps
from securedd.models.init import INIT_SCHEMES, seeded_network
from securedd.models.registry import MODELS

__all__ = ["KEY_FORMAT", "TargetKey", "load_key", "new_key", "save_key", "trained_network"]

KEY_FORMAT = "securedd-target-key/1"


@dataclass(frozen=True)
class TargetKey:
    """Architecture name, initialisation seed and scheme of the one network a SecDD set trains."""

    model: str
    seed: int
    init_scheme: str = "xavier"

    def network(self, shape: tuple[int, int, int], num_classes: int, device: str = "cpu") -> torch.nn.Module:
        """The target network, freshly initialised: the same key, the same weights."""
        return seeded_network(self.model, shape, num_classes, self.seed, self.init_scheme, device)


def new_key(model: str, init_scheme: str = "xavier") -> TargetKey:
    """A key for ``model`` with a 63-bit seed from the operating system's randomness."""
    MODELS.get(model)  # unknown names fail here, with the valid ones listed
    if init_scheme not in INIT_SCHEMES:
        raise ConfigError(f"init_scheme must be one of {', '.join(INIT_SCHEMES)}; got '{init_scheme}'")
    return TargetKey(model, secrets.randbits(63), init_scheme)


def save_key(key: TargetKey, path: str | Path) -> Path:
    """Write ``key`` to ``path`` (JSON, owner-only permissions), atomically."""
    path = Path(path)
    atomic_write_bytes(path, (json.dumps({"format": KEY_FORMAT, **asdict(key)}, indent=1) + "\n").encode())
    os.chmod(path, 0o600)
    return path


def load_key(path: str | Path) -> TargetKey:
    """Read a key file, with a clear error when it is missing or not a key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no key file at {path}: the SecDD key is written by `securedd distill --method secdd "
                          "--key FILE` (created there when missing)")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != KEY_FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        key = TargetKey(str(data["model"]), int(data["seed"]), str(data.get("init_scheme", "xavier")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is not a securedd target key ({exc}); expected a JSON file with format "
                          f"'{KEY_FORMAT}', model and seed") from None
    MODELS.get(key.model)
    return key


def trained_network(art: Artifact, key: TargetKey) -> torch.nn.Module:
    """``key``'s network after the artifact's learned GD steps: what the receiver of a SecDD set gets."""
    hints = art.metadata.get("evaluation") or {}
    if hints.get("protocol") != "replay" or art.lrs is None:
        raise MismatchError(f"{art.path or 'the artifact'} holds no learned GD schedule to replay (method "
                            f"'{art.method}'); keys apply to DD, SLDD and SecDD sets")
    spec = art.spec
    net = key.network(spec.shape, spec.num_classes)
    return replay_steps(net, art.images, art.labels, art.lrs, int(hints["steps"]), spec.num_classes)
