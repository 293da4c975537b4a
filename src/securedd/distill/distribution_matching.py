"""Distribution matching (DM, Zhao & Bilen 2023): match class-wise mean embeddings.

Every iteration draws a fresh randomly initialised network, freezes it, and for each class
matches the mean embedding of a random real batch to the mean embedding of the class's
synthetic images, both under the same (siamese) DSA transform:

    loss = sum_c || mean embed(A(real_c)) - mean embed(A(syn_c)) ||^2

Real data is touched in :meth:`DMMethod.real_batch` only (one place for a defence to act).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from securedd.data.augment import DSA
from securedd.distill.base import METHODS, Method
from securedd.distill.synthetic import SyntheticSet, learnable_set

__all__ = ["DMMethod", "DMParams", "dm_loss"]


@dataclass(frozen=True)
class DMParams:
    """DM hyper-parameters (REFERENCE section 3).

    ``lr_img`` 0 means the reference rule: 1, or 10 for IPC >= 100. ``dsa_strategy`` ""
    means the dataset's default strategy.
    """

    lr_img: float = 0.0
    momentum: float = 0.5
    batch_real: int = 256
    init: str = "real"
    dsa: bool = True
    dsa_strategy: str = ""


def dm_loss(embed: torch.nn.Module, real: list[torch.Tensor], syn: list[torch.Tensor]) -> torch.Tensor:
    """Sum over classes of the squared distance between mean real and mean synthetic embeddings.

    ``real[c]`` is (B, C, H, W) and ``syn[c]`` is (ipc, C, H, W) for class ``c``.
    """
    loss = torch.zeros((), device=syn[0].device, dtype=syn[0].dtype)
    for r, s in zip(real, syn, strict=True):
        loss = loss + ((embed(r).mean(0) - embed(s).mean(0)) ** 2).sum()
    return loss


@METHODS.register("dm")
class DMMethod(Method):
    """Distribution matching: class-wise mean embeddings of fresh random networks."""

    name = "dm"
    Params = DMParams
    default_iterations = 20_000

    def __init__(self, params: DMParams, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, ctx)
        strategy = params.dsa_strategy or ctx.spec.dsa_strategy
        self.dsa = DSA(strategy) if params.dsa else None

    def init_synthetic(self) -> SyntheticSet:
        ctx = self.ctx
        return learnable_set(self.params.init, ctx.spec, ctx.ipc, ctx.sampler, ctx.generator("init"))

    def optimizer(self, syn: SyntheticSet) -> torch.optim.Optimizer:
        lr = self.params.lr_img or (10.0 if self.ctx.ipc >= 100 else 1.0)
        return torch.optim.SGD([syn.images], lr=lr, momentum=self.params.momentum)

    def real_batch(self, c: int) -> torch.Tensor:
        """(batch_real, C, H, W) random real images of class ``c``: the only access to real data."""
        return self.ctx.sampler.sample(c, self.params.batch_real)

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        ctx = self.ctx
        net = ctx.new_model(purpose="dm/net")
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        gen = ctx.generator("dm/dsa")
        real, fake = [], []
        for c in range(ctx.spec.num_classes):
            r, s = self.real_batch(c), syn.images[c * ctx.ipc : (c + 1) * ctx.ipc]
            if self.dsa is not None:
                r, s = self.dsa.siamese(r, s, gen)
            real.append(r)
            fake.append(s)
        yield dm_loss(net.embed, real, fake)
