"""LDPO-RLD (SFDD, REFERENCE section 4): the matching loss trains against dispersed labels.

In the matching loss only, the one-hot label of a real or synthetic image of class ``c``
becomes a distribution: ``1 - eps`` on ``c`` and ``eps`` spread over ``k`` other classes
drawn at random, by a random ranking (``linear``: the class of rank ``r`` gets
``eps * 2r / (k (k + 1))``) or evenly (``uniform``: ``eps / k`` each, the earlier KDk
defence). By default one draw per class and matching step serves the real and the
synthetic images of that class alike (the paper's ``Lin(y_c, k, eps)``); ``draw="image"``
draws per image.

The paper defines it for gradient matching, where the real and the synthetic images of a
class train against the same distribution. For distribution matching, whose loss has no
labels, the same distributions mix the class means on both sides of the match: class
``c`` matches ``sum_j T[c, j] mu_j`` of the real means against the same mixture of the
synthetic means. The minimiser is unchanged (``T`` has full rank in practice), but each
class's update carries the other classes' residuals. This adaptation is ours. It is a
heuristic with no formal guarantee: its ledger never reports an epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from securedd.defences.accounting import PrivacyLedger
from securedd.defences.base import DEFENCES, Defence
from securedd.distill.hooks import Hooks, RealSignal
from securedd.errors import ConfigError

if TYPE_CHECKING:
    from securedd.distill.base import DistillContext

__all__ = ["DISPERSIONS", "DRAWS", "LDPORLD", "LDPORLDParams", "ldpo_rld_targets"]

DISPERSIONS = ("linear", "uniform")
DRAWS = ("class", "image")


def ldpo_rld_targets(labels: torch.Tensor, num_classes: int, k: int, eps: float, dispersion: str,
                     generator: torch.Generator, draw: str = "class") -> torch.Tensor:
    """(N, K) LDPO-RLD target distributions for hard ``labels`` (N,).

    ``draw="class"``: one draw per class present, shared by every image of that class
    (the paper's ``Lin(y_c, k, eps)``, a function of the class: within one matching step,
    the real and synthetic images of class ``c`` train against the same distribution).
    ``draw="image"``: a fresh draw per image.

    >>> t = ldpo_rld_targets(torch.tensor([0, 0, 2]), 3, 1, 0.5, "linear", torch.Generator().manual_seed(0))
    >>> t.sum(1).tolist(), t[:, 0].tolist()
    ([1.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    """
    _check(num_classes, k, eps, dispersion, draw)
    if draw == "class":
        classes, index = labels.unique(return_inverse=True)
        return ldpo_rld_targets(classes, num_classes, k, eps, dispersion, generator, "image")[index]
    n = len(labels)
    # k other classes per image: a random permutation of the non-true classes, first k kept
    scores = torch.rand((n, num_classes), generator=generator, device=generator.device).to(labels.device)
    scores[torch.arange(n, device=labels.device), labels] = 2.0  # the true class sorts last
    others = scores.argsort(1)[:, :k]  # (n, k), in random order: position i has rank i + 1
    if dispersion == "linear":
        ranks = torch.arange(1, k + 1, dtype=torch.float32, device=labels.device)
        mass = eps * 2 * ranks / (k * (k + 1))
    else:
        mass = torch.full((k,), eps / k, device=labels.device)
    targets = torch.zeros((n, num_classes), device=labels.device)
    targets[torch.arange(n, device=labels.device), labels] = 1 - eps
    targets.scatter_(1, others, mass.expand(n, k).contiguous())
    return targets


def _check(num_classes: int | None, k: int, eps: float, dispersion: str, draw: str) -> None:
    if dispersion not in DISPERSIONS:
        raise ConfigError(f"the LDPO-RLD dispersion must be one of {', '.join(DISPERSIONS)}; got '{dispersion}'")
    if draw not in DRAWS:
        raise ConfigError(f"the LDPO-RLD draw must be one of {', '.join(DRAWS)}; got '{draw}'")
    if k < 1 or (num_classes is not None and k >= num_classes) or not 0 <= eps < 1:
        bound = f"1 <= k < {num_classes}" if num_classes is not None else "k >= 1"
        raise ConfigError(f"LDPO-RLD needs {bound} and 0 <= eps < 1; got k={k}, eps={eps}")


@dataclass(frozen=True)
class LDPORLDParams:
    """``k`` other classes, mass ``eps`` off the true class, ``dispersion`` linear or uniform,
    ``draw`` per class (the paper's) or per image."""

    k: int = 9
    eps: float = 9 / 11
    dispersion: str = "linear"
    draw: str = "class"

    def __post_init__(self) -> None:
        _check(None, self.k, self.eps, self.dispersion, self.draw)


class _Dispersion(Hooks):
    def __init__(self, params: LDPORLDParams) -> None:
        self.params = params

    def bind(self, ctx: DistillContext) -> None:
        self.gen, self.num_classes = ctx.generator("ldpo-rld"), ctx.spec.num_classes

    def label_targets(self, y_real: torch.Tensor,
                      y_syn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        p = self.params
        targets = ldpo_rld_targets(torch.cat([y_real, y_syn]), self.num_classes, p.k, p.eps, p.dispersion, self.gen,
                                   p.draw)
        return targets[: len(y_real)], targets[len(y_real):]

    def real_signal(self, signal: RealSignal) -> RealSignal:
        if signal.kind != "embedding":
            return signal  # gradient signals were computed against the dispersed targets already
        (means,) = signal.values  # (K', D), row i for class classes[i]
        classes = torch.tensor(signal.classes, device=means.device)
        p = self.params
        mix = ldpo_rld_targets(classes, self.num_classes, p.k, p.eps, p.dispersion, self.gen, p.draw)[:, classes]
        mix = (mix / mix.sum(1, keepdim=True)).to(means.dtype)  # mass on absent classes goes to the present ones
        return replace(signal, values=(mix @ means,), mixing=mix)


@DEFENCES.register("ldpo-rld")
class LDPORLD(Defence[LDPORLDParams]):
    """LDPO-RLD label dispersion in the client's matching loss (SFDD, Table 3).

    Threat model: an honest-but-curious server that knows the client's network
    initialisation and sees its update, and inverts the update to recover the client's
    real images (gradient leakage). Dispersed labels make the update a poor witness of the
    real batch; nothing bounds what leaks (no epsilon), and it does not stop a malicious
    server or a poisoning client.
    """

    name = "ldpo-rld"
    Params = LDPORLDParams
    stage = "client"

    def hooks(self) -> Hooks:
        return _Dispersion(self.params)

    def ledger(self, rounds: int, *, delta: float = 1e-5, accountant: str = "rdp") -> PrivacyLedger:
        return PrivacyLedger("ldpo-rld", rounds=rounds)
