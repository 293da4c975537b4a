"""The honest-but-curious SFDD server reconstructs a worker's real batch from its update.

The mechanics live in :mod:`securedd.federated.leakage`, beside the worker's round they
replay (:func:`~securedd.federated.client.local_update`); this module gives them the
attack contract: :class:`GradientLeakage` (``leakage``) on a :class:`LeakageTarget`,
returning a :class:`GradientLeakageResult`. The experiment plays the worker honestly (with
the target's defence), keeps what the server receives, and scores the reconstruction
against the worker's real batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from securedd.attacks.base import ATTACKS, Attack, AttackResult
from securedd.config import RunConfig
from securedd.data.spec import RealData
from securedd.defences import Defence
from securedd.distill.synthetic import class_labels
from securedd.errors import ConfigError
from securedd.federated.leakage import LeakageResult, LeakageSettings, leakage_attack, observe_round

__all__ = ["GradientLeakage", "GradientLeakageResult", "LeakageParams", "LeakageTarget"]


@dataclass(frozen=True)
class LeakageTarget:
    """One SFDD worker's round: the run config, the worker's shard and the set the server sent it.

    The round must have one matching step (``method.outer_loop=1``, IPC 1's schedule) of
    DC without augmentation. ``clients`` only records how many workers the data was split
    between.
    """

    config: RunConfig
    shard: RealData
    sent: torch.Tensor
    labels: torch.Tensor
    client: int = 0
    round_: int = 0
    defence: Defence[Any] | None = None
    clients: int | None = None

    @classmethod
    def from_federation(cls, config: RunConfig, clients: int = 5, client: int = 0, round_: int = 0,
                        defence: Defence[Any] | None = None, split: str = "iid") -> LeakageTarget:
        """Worker ``client`` of a ``clients``-way ``split`` of ``config``'s data, sent the server's first set."""
        from securedd.federated.apps import client_shard
        from securedd.federated.server import initial_images
        from securedd.federated.settings import FederationSettings

        if not 0 <= client < clients:
            raise ConfigError(f"the attacked client must be in 0..{clients - 1}; got {client}")
        shard = client_shard(config, clients, split, client)
        sent = initial_images(FederationSettings(config, clients=clients, progress=False))
        labels = class_labels(shard.spec.num_classes, config.method.ipc, sent.device)
        return cls(config, shard, sent, labels, client, round_, defence, clients)


LeakageParams = LeakageSettings
"""The server's optimisation budget and knowledge; ``seed`` ``None`` seeds the dummy batch with the target run's seed."""


@dataclass
class GradientLeakageResult(AttackResult):
    """The reconstruction (:class:`~securedd.federated.leakage.LeakageResult`) and the round it came from."""

    found: LeakageResult
    dataset: str
    model: str
    client: int
    round_: int
    batch_real: int | None
    defence: Defence[Any] | None
    know_init: bool

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "model": self.model, "client": self.client, "round": self.round_,
                "batch_real": self.batch_real,
                "defence": self.defence.to_dict() if self.defence is not None else None, "know_init": self.know_init,
                **self.found.to_dict(), "losses": self.found.losses}

    @property
    def summary(self) -> str:
        f = self.found
        labels = f", labels recovered {f.label_accuracy:.0%}" if f.label_accuracy is not None else ""
        defence = self.defence.name if self.defence is not None else "none"
        return (f"reconstructed {len(f.labels)} images of client {self.client} ({defence}): standardised "
                f"MSE {round(f.mse, 4):.3f} (2 = nothing learnt), PSNR {round(f.psnr, 3):.2f} dB, SSIM "
                f"{round(f.ssim, 4):.3f}{labels}; {len(f.losses)} L-BFGS steps")


@ATTACKS.register("leakage")
class GradientLeakage(Attack[LeakageTarget, GradientLeakageResult]):
    """Gradient inversion of one SFDD worker's round by the server that aggregates it.

    Threat model: the server is honest but curious. It runs the protocol faithfully and
    sees the set ``S^g`` it sent and the set the worker returned; it knows the protocol
    (DC's matching loss, one matching step, the image learning rate), the worker's real
    batch size per class and, in the strongest setting (``know_init``), the worker's
    network initialisation. It never sees the worker's shard. It optimises a dummy batch
    with L-BFGS until the same round on it reproduces the worker's change; a defence such
    as LDPO-RLD makes the worker match soft labels the server does not know.

    Paper: Zhu, Liu and Han, "Deep Leakage from Gradients", NeurIPS 2019, applied to a
    worker's round as in Arazzi et al., "Secure Federated Data Distillation" (2025), the
    SFDD paper.
    """

    name = "leakage"
    Params = LeakageParams

    def run(self, target: LeakageTarget, *, progress: bool = False) -> GradientLeakageResult:
        p: LeakageParams = self.params
        cfg = target.config
        observed = observe_round(cfg, target.shard, target.sent, target.labels, client=target.client,
                                 round_=target.round_, defence=target.defence)
        settings = dataclasses.replace(p, seed=cfg.seed if p.seed is None else p.seed)
        found = leakage_attack(observed, target.shard.spec, settings, progress=progress)
        batch_real = cfg.method.params.get("batch_real")
        return GradientLeakageResult(found, cfg.data.name, cfg.model, target.client, target.round_,
                                     int(batch_real) if batch_real is not None else None, target.defence,
                                     p.know_init)
