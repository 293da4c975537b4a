"""One federated run's settings: the distillation config, the clients and the server's policy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securedd.config import RunConfig, config_to_dict
from securedd.defences import Defence
from securedd.errors import ConfigError
from securedd.federated.aggregate import check_aggregator
from securedd.federated.client import check_federated
from securedd.federated.doorping import Doorping
from securedd.federated.hostile import Hostile
from securedd.federated.screening import ReplyPolicy

__all__ = ["FederationSettings"]


@dataclass(frozen=True)
class FederationSettings:
    """One federated run: the distillation config, the clients and the server's policy."""

    config: RunConfig
    clients: int = 5
    rounds: int = 100
    split: str = "iid"
    aggregator: str = "mean"
    trim: float = 0.2
    server_momentum: float = 0.0
    """FedAvgM: the server applies ``v = m v + (aggregate - S^g)``, ``S^g += v`` (0: the paper's plain mean).

    With one matching step per round, 0.5 makes the rounds move as centralised DC's image
    optimiser (SGD, momentum 0.5) does, which a client's fresh optimiser cannot."""
    min_clients: int = 1
    """Connected nodes the server waits for before it sends a round (deployment engine)."""
    quorum: int | None = None
    """Usable replies a round needs to change ``S^g`` (``None``: a majority of ``clients``). A round with
    fewer keeps ``S^g``; so one bad reply never stops the federation, and at least a majority must agree."""
    trust_root: int = 10
    """``fltrust``: clean training images per class the server holds as its root set (drawn with its own seed)."""
    patience: int = 3
    """Rounds in a row without a quorum after which the run stops (its checkpoint kept)."""
    policy: ReplyPolicy = ReplyPolicy()
    """What a reply may be (:class:`~securedd.federated.screening.ReplyPolicy`)."""
    timeout: float = 600.0
    threads: int = 1
    """torch threads of a client's update: fixed, so a client's bits do not depend on its machine's cores."""
    defence: Defence[Any] | None = None
    """The clients' defence (a client-stage :class:`~securedd.defences.Defence`; ``None``: none)."""
    doorping: Doorping | None = None
    """An experiment: workers 0..k-1 run the Doorping attack (None: every worker is honest)."""
    hostile: Hostile | None = None
    """An experiment: workers 0..k-1 tamper with their replies (:mod:`~securedd.federated.hostile`)."""
    accountant: str = "rdp"
    delta: float = 1e-5
    out: str = "federated.safetensors"
    progress: bool = True

    def __post_init__(self) -> None:
        check_aggregator(self.aggregator)
        if self.clients < 1 or self.rounds < 0 or not 1 <= self.min_clients <= self.clients:
            raise ConfigError(f"need clients >= 1, rounds >= 0 and 1 <= min_clients <= clients; got clients="
                              f"{self.clients}, rounds={self.rounds}, min_clients={self.min_clients}")
        if self.quorum is not None and not 1 <= self.quorum <= self.clients:
            raise ConfigError(f"quorum must be in 1..clients={self.clients}; got {self.quorum}")
        if self.patience < 1:
            raise ConfigError(f"patience must be >= 1; got {self.patience}")
        if self.trust_root < 1:
            raise ConfigError(f"trust_root must be >= 1 image per class; got {self.trust_root}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1; got {self.threads}")
        if not 0 <= self.server_momentum < 1:
            raise ConfigError(f"server_momentum must be in [0, 1); got {self.server_momentum}")
        check_federated(self.config, self.defence)

    def to_record(self) -> dict[str, Any]:
        """The settings as ``ConfigRecord`` values (strings and numbers)."""
        return {"run-config": json.dumps(config_to_dict(self.config)), "clients": self.clients,
                "split": self.split, "threads": self.threads,
                "defence": json.dumps(self.defence.to_dict() if self.defence is not None else None),
                "doorping": json.dumps(self.doorping.to_dict() if self.doorping else None),
                "hostile": json.dumps(self.hostile.to_dict() if self.hostile else None)}

    @property
    def needed_replies(self) -> int:
        """The quorum: usable replies a round needs (a majority of the clients unless set)."""
        return self.quorum if self.quorum is not None else self.clients // 2 + 1

    @property
    def checkpoint(self) -> Path:
        return Path(self.out).with_suffix(".server.pt")
