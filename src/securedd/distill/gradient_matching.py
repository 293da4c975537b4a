"""Gradient matching: DC (Zhao et al. 2021) and DSA (DC with siamese augmentation).

Each iteration draws a fresh network and runs ``outer_loop`` matching steps. In each, the
gradient of the classification loss on a real batch of a class is matched to the gradient
on that class's synthetic images (per layer, sum over output rows of 1 - cosine; 1-D
parameters contribute nothing), summed over classes; between matching steps the network
trains on the synthetic set for ``inner_loop`` epochs. Batch-norm networks take their
running statistics from real data and freeze them while matching, as the reference does.

The real signal (:class:`~securedd.distill.hooks.RealSignal`, kind ``gradient``) is the
per-class real gradient (:meth:`DCMethod.class_signal`); :meth:`DCMethod.match` is the
matching step. Real batches, label targets, networks and the signal pass through the
run's hooks (``ctx.hooks``), where defences such as LDPO-RLD and attacks such as
Doorping act.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from securedd.data.augment import DSA
from securedd.distill.base import METHODS, DistillContext, Method
from securedd.distill.hooks import RealSignal
from securedd.distill.synthetic import SyntheticSet, learnable_set
from securedd.errors import ConfigError
from securedd.models.pieces import has_batch_norm, num_pieces

__all__ = ["DCMethod", "DCParams", "DSAMethod", "DSAParams", "gradient_distance", "loop_schedule"]

# REFERENCE section 3: IPC -> (outer_loop, inner_loop).
SCHEDULE = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
DISTANCES = ("layerwise", "mse", "l1", "cos")


def loop_schedule(ipc: int) -> tuple[int, int]:
    """(outer_loop, inner_loop) for ``ipc``: the reference table, else its nearest entry.

    Ties go to the smaller IPC; IPCs above 50 use the IPC 50 entry.
    """
    if ipc in SCHEDULE:
        return SCHEDULE[ipc]
    nearest = min(SCHEDULE, key=lambda k: (abs(k - ipc), k))
    return SCHEDULE[nearest]


def gradient_distance(real: list[torch.Tensor], syn: list[torch.Tensor], kind: str = "layerwise") -> torch.Tensor:
    """Distance between two lists of per-parameter gradients.

    ``layerwise``: per parameter of 2+ dims, rows = output units, sum of (1 - cosine);
    1-D parameters add 0. ``mse``: sum of squared differences. ``l1``: sum of absolute
    differences (IDC's distance for grey-scale digits). ``cos``: 1 - cosine of the
    concatenated gradients.
    """
    if kind == "layerwise":
        total = torch.zeros((), device=syn[0].device, dtype=syn[0].dtype)
        for gr, gs in zip(real, syn, strict=True):
            if gr.dim() == 1:
                continue
            gr, gs = gr.reshape(gr.shape[0], -1), gs.reshape(gs.shape[0], -1)
            cos = (gr * gs).sum(-1) / (gr.norm(dim=-1) * gs.norm(dim=-1) + 1e-6)
            total = total + (1 - cos).sum()
        return total
    if kind == "mse":  # sum()'s stub adds Literal[0] for an empty sum; gradient lists are never empty
        return sum(((gr - gs) ** 2).sum() for gr, gs in zip(real, syn, strict=True))  # type: ignore[return-value]
    if kind == "l1":
        return sum((gr - gs).abs().sum() for gr, gs in zip(real, syn, strict=True))  # type: ignore[return-value]
    if kind == "cos":
        r = torch.cat([g.reshape(-1) for g in real])
        s = torch.cat([g.reshape(-1) for g in syn])
        dot = (r * s).sum()
        norms: torch.Tensor = r.norm() * s.norm()
        return 1 - dot / (norms + 1e-6)
    raise ConfigError(f"unknown gradient distance '{kind}'; valid: {', '.join(DISTANCES)}")


@dataclass(frozen=True)
class DCParams:
    """DC hyper-parameters (REFERENCE section 3). ``outer_loop``/``inner_loop`` 0: the IPC schedule.

    ``compile``: compute the real-batch gradients and the network's training steps with a
    ``torch.compile``-d ``torch.func.grad`` after a one-off compilation
    (``benchmarks/speed.py`` measures what it buys); floats differ from eager in the last
    bits, so a run and its resume must agree on it. Networks with batch norm always run
    eagerly.

    ``chunk``: network gradients on real batches and in the training steps between
    matching steps are summed over pieces of at most this many images (0: whole batches).
    The gradient is the same up to float rounding; on a CPU, pieces whose activations fit
    the caches are much faster. Networks with batch norm train on whole batches, since
    their statistics depend on the batch.
    """

    lr_img: float = 0.1
    momentum_img: float = 0.5
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    init: str = "noise"
    distance: str = "layerwise"
    outer_loop: int = 0
    inner_loop: int = 0
    bn_batch: int = 16
    dsa: bool = False
    dsa_strategy: str = ""
    compile: bool = False
    chunk: int = 16


@dataclass(frozen=True)
class DSAParams(DCParams):
    """DSA: DC with real init and siamese augmentation on."""

    init: str = "real"
    dsa: bool = True


class _CompiledGrad:
    """Parameter gradients of the mean cross-entropy, through one compiled ``torch.func.grad``.

    The graph is traced on a template network and every call passes the live network's
    parameters, so fresh networks of the same architecture reuse one compilation. A batch
    is cut into pieces of at most ``chunk`` rows whose summed-loss gradients are added and
    divided by the batch size: the same gradient, computed on activations small enough to
    stay in the CPU's caches (``benchmarks/speed.py``). Only for networks without batch
    norm, whose outputs do not depend on the rest of the batch.
    """

    def __init__(self, template: torch.nn.Module, chunk: int = 0) -> None:
        self.template, self.chunk = template, chunk

        def loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(torch.func.functional_call(self.template, params, (x,)), y, reduction="sum")

        self.fn = torch.compile(torch.func.grad(loss), dynamic=False)

    def __call__(self, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        params = {k: p.detach() for k, p in net.named_parameters()}
        total: dict[str, torch.Tensor] = {}
        k = num_pieces(len(y), self.chunk)
        for xs, ys in zip(x.tensor_split(k), y.tensor_split(k), strict=True):
            for name, g in self.fn(params, xs, ys).items():
                total[name] = total[name].add_(g) if name in total else g
        return [total[name].div_(len(y)) for name in params]


def _eager_grad(net: torch.nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                chunk: int) -> list[torch.Tensor]:
    """Mean cross-entropy gradients of ``params`` with autograd, ``chunk`` rows at a time."""
    total: list[torch.Tensor] = []
    k = num_pieces(len(y), chunk)
    for xs, ys in zip(x.tensor_split(k), y.tensor_split(k), strict=True):
        grads = torch.autograd.grad(F.cross_entropy(net(xs), ys, reduction="sum"), params)
        total = [a.add_(g) for a, g in zip(total, grads, strict=True)] if total else [g.detach() for g in grads]
    return [g.div_(len(y)) for g in total]


@METHODS.register("dc")
class DCMethod(Method[DCParams]):
    """DC: gradient matching, layer-wise cosine distance, noise init."""

    name = "dc"
    Params = DCParams
    default_iterations = 1000
    real_signal_kind = "gradient"

    def __init__(self, params: DCParams, ctx: DistillContext) -> None:
        super().__init__(params, ctx)
        if params.distance not in DISTANCES:
            raise ConfigError(f"method.distance must be one of {', '.join(DISTANCES)}; got '{params.distance}'")
        outer, inner = loop_schedule(ctx.ipc)
        self.outer_loop = params.outer_loop or outer
        self.inner_loop = params.inner_loop or inner
        self.dsa = DSA(params.dsa_strategy or ctx.spec.dsa_strategy) if params.dsa else None
        if params.chunk < 0:
            raise ConfigError(f"method.chunk must be >= 0 (0: whole batches); got {params.chunk}")
        template = ctx.new_model(purpose="dc/template")
        self._batch_norm = has_batch_norm(template)
        self._grad = _CompiledGrad(template, params.chunk) if params.compile and not self._batch_norm else None

    def init_synthetic(self) -> SyntheticSet:
        ctx = self.ctx
        return learnable_set(self.params.init, ctx.spec, ctx.ipc, ctx.sampler, ctx.generator("init"))

    def optimizer(self, syn: SyntheticSet) -> torch.optim.Optimizer:
        return torch.optim.SGD([syn.images], lr=self.params.lr_img, momentum=self.params.momentum_img)

    def real_batch(self, c: int, n: int | None = None) -> torch.Tensor:
        """Random real images of class ``c`` (through the run's hooks): the only access to real data."""
        return self.ctx.hooks.real_batch(c, self.ctx.sampler.sample(c, n or self.params.batch_real))

    def _set_bn_from_real(self, net: torch.nn.Module) -> list[torch.nn.Module]:
        bns: list[torch.nn.Module] = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if bns:
            net.train()
            with torch.no_grad():
                net(torch.cat([self.real_batch(c, self.params.bn_batch) for c in self.ctx.classes]))
            for m in bns:
                m.eval()
        return bns

    def class_signal(self, net: torch.nn.Module, c: int, real: torch.Tensor, y_real: torch.Tensor) -> RealSignal:
        """The real signal of class ``c``: the mean loss gradient of ``net`` on ``real`` against ``y_real``."""
        if self._grad is not None:
            grads = self._grad(net, real, y_real)
        else:
            grads = _eager_grad(net, [p for p in net.parameters() if p.requires_grad], real, y_real,
                                self.params.chunk)
        return RealSignal("gradient", tuple(grads), (c,))

    def match(self, signal: RealSignal, net: torch.nn.Module, fake: torch.Tensor, y_fake: torch.Tensor) -> torch.Tensor:
        """The matching step: distance between the real gradients and those of the synthetic images."""
        params = [p for p in net.parameters() if p.requires_grad]
        g_fake = torch.autograd.grad(F.cross_entropy(net(fake), y_fake), params, create_graph=True)
        return gradient_distance(list(signal.values), list(g_fake), self.params.distance)

    def matching_loss(self, net: torch.nn.Module, syn: SyntheticSet) -> torch.Tensor:
        """Sum over classes of the distance between real and synthetic gradients of ``net``."""
        ctx, hooks = self.ctx, self.ctx.hooks
        gen = ctx.generator("dc/dsa")
        loss = torch.zeros((), device=ctx.device)
        for c in ctx.classes:
            real = self.real_batch(c)
            fake = syn.images[c * ctx.ipc : (c + 1) * ctx.ipc]
            if self.dsa is not None:
                real, fake = self.dsa.siamese(real, fake, gen)
            y_real = torch.full((real.shape[0],), c, device=ctx.device)
            y_fake = syn.labels[c * ctx.ipc : (c + 1) * ctx.ipc]
            targets = hooks.label_targets(y_real, y_fake)
            if targets is not None:
                y_real, y_fake = targets
            signal = hooks.real_signal(self.class_signal(net, c, real, y_real))
            loss = loss + self.match(signal, net, fake, y_fake)
        return loss

    def _train_net(self, net: torch.nn.Module, opt: torch.optim.Optimizer, syn: SyntheticSet) -> None:
        # Not the training package's loop: between matching steps the network takes plain SGD
        # steps without momentum or decay, in the reference's order, optionally through the
        # compiled gradient, and the run's generator draws the order and the augmentation.
        images, labels = syn.images.detach(), syn.labels
        gen = self.ctx.generator("dc/inner")
        net.train()
        for _ in range(self.inner_loop):
            order = torch.randperm(len(labels), generator=gen, device=gen.device).to(images.device)
            for start in range(0, len(labels), self.params.batch_train):
                idx = order[start : start + self.params.batch_train]
                x = images[idx] if self.dsa is None else self.dsa(images[idx], gen)
                if self._grad is not None:  # plain SGD, as the optimiser below
                    with torch.no_grad():
                        for p, g in zip(net.parameters(), self._grad(net, x, labels[idx]), strict=True):
                            p.sub_(g, alpha=self.params.lr_net)
                    continue
                opt.zero_grad(set_to_none=True)
                k = 1 if self._batch_norm else num_pieces(len(idx), self.params.chunk)
                for xs, ys in zip(x.tensor_split(k), labels[idx].tensor_split(k), strict=True):
                    (F.cross_entropy(net(xs), ys, reduction="sum") / len(idx)).backward()
                opt.step()

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        net = self.ctx.new_model(purpose="dc/net")
        self.ctx.hooks.network(net)
        opt_net = torch.optim.SGD(net.parameters(), lr=self.params.lr_net)
        for step in range(self.outer_loop):
            bns = self._set_bn_from_real(net)
            yield self.matching_loss(net, syn)
            for m in bns:
                m.train()
            if step < self.outer_loop - 1:
                self._train_net(net, opt_net, syn)
                self.ctx.hooks.network(net)


@METHODS.register("dsa")
class DSAMethod(DCMethod):
    """DSA: gradient matching with siamese differentiable augmentation, real init."""

    name = "dsa"
    Params = DSAParams
