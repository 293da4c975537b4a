"""The SecDD key: the target network's architecture and initialisation seed.

A SecDD set trains one network, the one rebuilt from its key, and the key never goes into
the artifact. The seed is drawn from the operating system's randomness (not from the run's
seed, which the artifact records), and the key file is written readable by its owner only
(mode 0600 from its first byte); loading a key that others can read logs a warning, and a
seed outside the key's range (0 to 2**63 - 1) is refused.

Example:
    >>> import tempfile
    >>> key = new_key("lenet")
    >>> path = save_key(key, tempfile.mkdtemp() + "/target.key")
    >>> load_key(path) == key
    True
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from securedd.errors import ConfigError
from securedd.models.init import INIT_SCHEMES, seeded_network
from securedd.models.registry import MODELS
from securedd.store import atomic_write_bytes, warn_if_exposed

__all__ = ["KEY_FORMAT", "KEY_SEED_BITS", "TargetKey", "check_key_seed", "load_key", "new_key", "save_key"]

KEY_FORMAT = "securedd-target-key/1"
KEY_SEED_BITS = 63
"""A key's seed is a whole number from 0 to ``2**KEY_SEED_BITS - 1``, as :func:`new_key` draws it."""


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
    return TargetKey(model, secrets.randbits(KEY_SEED_BITS), init_scheme)


def check_key_seed(seed: object, where: str) -> int:
    """``seed`` if it is a whole number in the key's range (0 to 2**63 - 1).

    Raises:
        ConfigError: naming ``where`` (the key file) and the range.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**KEY_SEED_BITS:
        raise ConfigError(f"{where}: the key's seed must be a whole number from 0 to 2**{KEY_SEED_BITS} - 1 "
                          f"({2**KEY_SEED_BITS - 1}); got {seed!r}. Make a new key: delete the file and run "
                          "`securedd distill --method secdd method.key=FILE` again")
    return seed


def save_key(key: TargetKey, path: str | Path) -> Path:
    """Write ``key`` to ``path`` (JSON), atomically, readable by its owner only from the first byte.

    Raises:
        ConfigError: the key's seed is outside the key's range.
    """
    path = Path(path)
    check_key_seed(key.seed, f"key for {path}")
    atomic_write_bytes(path, (json.dumps({"format": KEY_FORMAT, **asdict(key)}, indent=1) + "\n").encode(),
                       private=True)
    return path


def load_key(path: str | Path) -> TargetKey:
    """Read a key file, with a clear error when it is missing, not a key or its seed is out of range.

    A key file that others may read is loaded with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no key file at {path}: the SecDD key is written by `securedd distill --method secdd "
                          "--key FILE` (created there when missing)")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != KEY_FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        model, seed, scheme = str(data["model"]), data["seed"], str(data.get("init_scheme", "xavier"))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ConfigError(f"{path} is not a securedd target key ({exc}); expected a JSON file with format "
                          f"'{KEY_FORMAT}', model and seed") from None
    key = TargetKey(model, check_key_seed(seed, str(path)), scheme)
    MODELS.get(key.model)
    warn_if_exposed(path, "the SecDD key")
    return key
