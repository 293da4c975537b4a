"""Distribution matching (DM, Zhao & Bilen 2023): match class-wise mean embeddings.

Every iteration draws a fresh randomly initialised network, freezes it, and for each class
matches the mean embedding of a random real batch to the mean embedding of the class's
synthetic images, both under the same (siamese) DSA transform:

    loss = sum_c || mean embed(A(real_c)) - mean embed(A(syn_c)) ||^2

Real data is touched in :meth:`DMMethod.real_batch` only (one place for a defence to act).
The real signal (:class:`~securedd.distill.hooks.RealSignal`, kind ``embedding``) is the
(K, D) matrix of real class means; it passes through the run's hooks on its way to the
match, as the real batches and the network do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from securedd.data.augment import DSA
from securedd.distill.base import METHODS, DistillContext, Method
from securedd.distill.hooks import RealSignal
from securedd.distill.synthetic import SyntheticSet, learnable_set
from securedd.errors import ConfigError
from securedd.models.pieces import has_batch_norm, num_pieces
from securedd.models.protocols import Embedder
from securedd.precision import autocast, check_precision

__all__ = ["DMMethod", "DMParams", "class_means", "dm_loss"]


@dataclass(frozen=True)
class DMParams:
    """DM hyper-parameters (REFERENCE section 3).

    ``lr_img`` 0 means the reference rule: 1, or 10 for IPC >= 100. ``dsa_strategy`` ""
    means the dataset's default strategy. ``compile`` runs the network's embedding through
    ``torch.compile`` after a one-off compilation of seconds to a minute
    (``benchmarks/speed.py`` measures what it buys); floats differ from eager in the last
    bits, so a run and its resume must agree on it. ``chunk``: images are embedded class by
    class in pieces of at most this many (0: whole classes); the loss is the same up to
    float rounding, and on a CPU pieces whose activations fit the caches are much faster.
    ``precision`` ``bf16`` embeds both sides under bfloat16 autocast (:mod:`securedd.precision`;
    the means and the loss in the images' precision): faster on CPUs with bfloat16 instructions, and a
    different method run from fp32's (``benchmarks/time_to_accuracy.py`` measures what it keeps).
    """

    lr_img: float = 0.0
    momentum: float = 0.5
    batch_real: int = 256
    init: str = "real"
    dsa: bool = True
    dsa_strategy: str = ""
    compile: bool = False
    chunk: int = 16
    precision: str = "fp32"


def dm_loss(
    embed: Callable[[torch.Tensor], torch.Tensor],
    real: list[torch.Tensor],
    syn: list[torch.Tensor],
    real_embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    joint: bool = False,
    chunk: int = 0,
) -> torch.Tensor:
    """Sum over classes of the squared distance between mean real and mean synthetic embeddings.

    ``real[c]`` is (B, C, H, W) and ``syn[c]`` is (ipc, C, H, W) for class ``c``. Each
    class is embedded on its own, in pieces of at most ``chunk`` images (0: whole classes),
    which is faster on a CPU than large batches; with ``joint`` (batch-norm networks, whose
    batch statistics must cover all classes as in the reference) each side goes through in
    one call. ``real_embed`` (default ``embed``, run without a graph) embeds the real side,
    e.g. a compiled copy.
    """
    with torch.no_grad():
        r_means = class_means(real_embed or embed, real, joint, chunk)
    return ((r_means - class_means(embed, syn, joint, chunk)) ** 2).sum()


def class_means(embed: Callable[[torch.Tensor], torch.Tensor], batches: list[torch.Tensor], joint: bool = False,
                chunk: int = 0) -> torch.Tensor:
    """(K, D) mean embedding of each class's batch: class by class in pieces of at most
    ``chunk`` images, or (``joint``) all classes through one call."""
    if joint:
        return torch.stack([e.mean(0) for e in embed(torch.cat(batches)).split([len(x) for x in batches])])
    return torch.stack([_mean_embedding(embed, x, chunk) for x in batches])


def _mean_embedding(embed: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([embed(part) for part in x.tensor_split(num_pieces(len(x), chunk))]).mean(0)


def _embed(net: Embedder, x: torch.Tensor) -> torch.Tensor:
    return net.embed(x)


def _embed_real(net: Embedder, x: torch.Tensor) -> torch.Tensor:
    """The real side's embedding: its own function, so that compiled it keeps its own cache."""
    return net.embed(x)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` laid out channels-last: one memory layout for every real piece, whatever the augmentation
    returned (free for one channel, where it only changes the strides' bookkeeping)."""
    return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


@METHODS.register("dm")
class DMMethod(Method[DMParams]):
    """Distribution matching: class-wise mean embeddings of fresh random networks."""

    name = "dm"
    Params = DMParams
    default_iterations = 20_000
    real_signal_kind = "embedding"

    def __init__(self, params: DMParams, ctx: DistillContext) -> None:
        super().__init__(params, ctx)
        if params.chunk < 0:
            raise ConfigError(f"method.chunk must be >= 0 (0: whole classes); got {params.chunk}")
        check_precision(params.precision, "method.precision")
        strategy = params.dsa_strategy or ctx.spec.dsa_strategy
        self.dsa = DSA(strategy) if params.dsa else None
        # Compiled, the real and synthetic sides keep separate caches (no-grad and grad graphs), and
        # real pieces enter in one layout: the augmentation returns both standard and channels-last
        # strides, and on single-channel images the graph compiled for standard strides runs 1.7x
        # slower than the channels-last one (benchmarks/embed_layout.py; the DM IPC 1 slowdown).
        self.real_embed: Callable[[Embedder, torch.Tensor], torch.Tensor] = _embed_real
        self.syn_embed: Callable[[Embedder, torch.Tensor], torch.Tensor] = _embed
        if params.compile:
            compiled_real = torch.compile(_embed_real, dynamic=False)
            self.real_embed = lambda net, x: compiled_real(net, _channels_last(x))
            self.syn_embed = torch.compile(_embed, dynamic=False)

    def init_synthetic(self) -> SyntheticSet:
        ctx = self.ctx
        return learnable_set(self.params.init, ctx.spec, ctx.ipc, ctx.sampler, ctx.generator("init"))

    def optimizer(self, syn: SyntheticSet) -> torch.optim.Optimizer:
        lr = self.params.lr_img or (10.0 if self.ctx.ipc >= 100 else 1.0)
        return torch.optim.SGD([syn.images], lr=lr, momentum=self.params.momentum)

    def real_batch(self, c: int) -> torch.Tensor:
        """(batch_real, C, H, W) random real images of class ``c`` (through the run's hooks): the
        only access to real data."""
        return self.ctx.hooks.real_batch(c, self.ctx.sampler.sample(c, self.params.batch_real))

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        ctx = self.ctx
        net = ctx.new_model(purpose="dm/net")
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        ctx.hooks.network(net)
        gen = ctx.generator("dm/dsa")
        real, fake = [], []
        for c in ctx.classes:
            r, s = self.real_batch(c), syn.images[c * ctx.ipc : (c + 1) * ctx.ipc]
            if self.dsa is not None:
                r, s = self.dsa.siamese(r, s, gen)
            real.append(r)
            fake.append(s)
        joint, chunk = has_batch_norm(net), self.params.chunk
        if not isinstance(net, Embedder):
            raise ConfigError(f"dm needs a network with penultimate features (embed); {type(net).__name__} has none")
        with torch.no_grad(), autocast(self.params.precision, ctx.device.type):
            means = class_means(lambda x: self.real_embed(net, x), real, joint, chunk).to(real[0].dtype)
        signal = ctx.hooks.real_signal(RealSignal("embedding", (means,), ctx.classes))
        yield self.match(signal, lambda x: self.syn_embed(net, x), fake, joint)

    def match(self, signal: RealSignal, embed: Callable[[torch.Tensor], torch.Tensor], fake: list[torch.Tensor],
              joint: bool) -> torch.Tensor:
        """The matching step: squared distance between the real class means and the synthetic ones."""
        (means,) = signal.values
        with autocast(self.params.precision, means.device.type):
            fake_means = class_means(embed, fake, joint, self.params.chunk).to(means.dtype)
        if signal.mixing is not None:  # a hook mixed the real class means: mix the synthetic ones alike
            fake_means = signal.mixing.to(fake_means.dtype) @ fake_means
        return ((means - fake_means) ** 2).sum()
