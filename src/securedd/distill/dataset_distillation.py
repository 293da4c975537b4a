"""Bilevel dataset distillation: DD (Wang et al. 2018), SLDD (DD with learned soft labels) and
SecDD (SLDD overfit to one secret network).

The synthetic set is applied as ``steps x epochs`` plain GD steps (step ``s`` of every
epoch takes the ``s``-th block of each class's images; images are tied across epochs,
learning rates are not), starting from the network's initial weights; the loss is the
cross-entropy of the resulting weights on a real batch, back-propagated through the steps
to the images, to one learning rate per step (``softplus``-parameterised, so it stays
positive) and, for SLDD, to one label-logit vector per image. Adam (lr 0.01, betas
0.5/0.999) updates them all (REFERENCE section 3).

Initial weights (``init``): ``fixed`` is one network drawn from ``init_seed``: the set
trains that very network, and the artifact records how to rebuild it. ``random`` draws
``nets_per_step`` fresh networks (``init_scheme``, Xavier in the paper) every iteration,
so the set must work from unseen initialisations; evaluation draws fresh ones too.

The reverse pass through the steps runs with ``memory="recompute"`` by default: constant
graph memory in the number of steps, the same gradient as the plain unroll
(:mod:`securedd.distill.bilevel`).

The artifact stores the learned rates (``lrs``, in step order), the labels as
distributions (SLDD: ``softmax`` of the learned logits) and, as its evaluation hints
(:meth:`DDMethod.eval_hints`), the ``replay`` protocol: architecture, steps per epoch, and
the initialisation.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from securedd.data import load_dataset
from securedd.data.convert import convert_images
from securedd.data.spec import DatasetSpec
from securedd.distill.base import METHODS, DistillContext, Method
from securedd.distill.bilevel import (
    MEMORY_MODES,
    outer_cross_entropy,
    raw_step_loss,
    step_loss,
    step_plan,
    unrolled_loss,
)
from securedd.distill.synthetic import INITS, SyntheticSet, class_labels, init_images
from securedd.errors import ConfigError
from securedd.evaluation.protocols import EvalHints, ReplayHints
from securedd.models.functional import flat_params, param_layout
from securedd.models.init import INIT_SCHEMES, reinitialise, seeded_network
from securedd.secure.keys import load_key, new_key, save_key
from securedd.training.pool import NetworkPool, load_pool

__all__ = ["DDMethod", "DDParams", "LABEL_INITS", "SLDDMethod", "SLDDParams", "SecDDMethod", "SecDDParams",
           "initial_label_logits", "unrelated_images"]

log = logging.getLogger(__name__)

NETWORK_INITS = ("fixed", "random", "pool")
LABEL_INITS = ("onehot", "uniform", "random", "mixed")
LABEL_TARGETS = ("softmax", "raw")


@dataclass(frozen=True)
class DDParams:
    """DD hyper-parameters (REFERENCE section 3).

    ``steps``: GD steps per epoch (0: one image per class per step, i.e. ``ipc``); IPC
    must be a multiple of it. ``learn_lrs``: learn one rate per step (DD's); ``False``
    keeps every step at ``lr_init``. ``decay_every``: multiply the Adam learning rate by
    ``lr_decay`` every this many iterations (0: never). ``init_seed``: the fixed
    network's seed (-1: derived from the run's seed). ``batch_real``: real images per
    outer loss, drawn class-balanced.

    ``init="pool"``: networks drawn from the trained pool in folder ``pool`` (``securedd
    pool``), its last ``held_out`` members kept for evaluation. ``relabel="K:T"``: the outer
    loss wants real images of class K classified as T (DD's data-poisoning attack; with a
    pool of well-trained networks and one step).
    """

    steps: int = 0
    epochs: int = 3
    lr_init: float = 0.02
    lr: float = 0.01
    beta1: float = 0.5
    lr_decay: float = 0.5
    decay_every: int = 0
    batch_real: int = 1024
    init: str = "fixed"
    init_seed: int = -1
    init_scheme: str = "xavier"
    nets_per_step: int = 4
    image_init: str = "noise"
    memory: str = "recompute"
    pool: str = ""
    held_out: int = 1
    relabel: str = ""
    learn_lrs: bool = True


@dataclass(frozen=True)
class SLDDParams(DDParams):
    """SLDD: DD plus one learned label-logit vector per image, starting as ``label_init``.

    ``onehot``: ``label_scale`` on the image's class, 0 elsewhere; ``uniform``: all 0;
    ``random``: standard normal; ``mixed``: ``label_scale / 2`` on the image's class and
    on one other random class (class mixing, as SecDD suggests).

    ``label_targets``: ``softmax`` trains each step against ``softmax`` of the logits (a
    distribution per image); ``raw`` against the learned vector itself, unrestricted
    (SecDD's "unrestricted labels": any sign and scale, so a label can also push a class
    down). The artifact stores what the steps used: distributions, or the raw vectors.
    """

    label_init: str = "onehot"
    label_scale: float = 5.0
    label_targets: str = "softmax"


def initial_label_logits(mode: str, labels: torch.Tensor, num_classes: int, scale: float,
                         generator: torch.Generator) -> torch.Tensor:
    """(N, K) starting label logits for hard ``labels`` (N,) (see :class:`SLDDParams`)."""
    onehot = F.one_hot(labels, num_classes).float()
    if mode == "onehot":
        return scale * onehot
    if mode == "uniform":
        return torch.zeros_like(onehot)
    if mode == "random":
        return torch.randn(onehot.shape, generator=generator, device=generator.device).to(onehot.device)
    if mode == "mixed":
        shift = torch.randint(1, num_classes, labels.shape, generator=generator, device=generator.device)
        other = F.one_hot((labels + shift.to(labels.device)) % num_classes, num_classes).float()
        return scale / 2 * (onehot + other)
    raise ConfigError(f"method.label_init must be one of {', '.join(LABEL_INITS)}; got '{mode}'")


def _parse_relabel(text: str, num_classes: int) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        k, target = (int(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"method.relabel must be 'K:T' (class K to be taken for T); got '{text}'") from None
    if not (0 <= k < num_classes and 0 <= target < num_classes and k != target):
        raise ConfigError(f"method.relabel needs two different classes in [0, {num_classes}); got '{text}'")
    return k, target


def _softplus_inverse(x: float) -> float:
    return x + math.log(-math.expm1(-x))


@METHODS.register("dd")
class DDMethod(Method[DDParams]):
    """DD: images and per-step learning rates through unrolled GD on one or many initialisations."""

    name = "dd"
    Params = DDParams
    default_iterations = 2000

    def __init__(self, params: DDParams, ctx: DistillContext) -> None:
        super().__init__(params, ctx)
        p = params
        if p.init not in NETWORK_INITS:
            raise ConfigError(f"method.init must be one of {', '.join(NETWORK_INITS)}; got '{p.init}'")
        if p.init_scheme not in INIT_SCHEMES:
            raise ConfigError(f"method.init_scheme must be one of {', '.join(INIT_SCHEMES)}; got '{p.init_scheme}'")
        if p.memory not in MEMORY_MODES:
            raise ConfigError(f"method.memory must be one of {', '.join(MEMORY_MODES)}; got '{p.memory}'")
        if p.image_init not in INITS:
            raise ConfigError(f"method.image_init must be one of {', '.join(INITS)}; got '{p.image_init}'")
        if p.lr_init <= 0 or p.epochs < 1 or p.nets_per_step < 1 or p.batch_real < ctx.spec.num_classes:
            raise ConfigError("method.lr_init must be > 0, epochs and nets_per_step >= 1, and batch_real at least "
                              f"the number of classes; got lr_init={p.lr_init}, epochs={p.epochs}, "
                              f"nets_per_step={p.nets_per_step}, batch_real={p.batch_real}")
        self.step_loss = step_loss
        self.pool = self._load_pool() if p.init == "pool" else None
        self.relabel = _parse_relabel(p.relabel, ctx.spec.num_classes)
        self.steps = p.steps or ctx.ipc
        self.plan = step_plan(ctx.spec.num_classes, ctx.ipc, self.steps, p.epochs, device=ctx.device)
        self.arch, self.init_seed, self.init_scheme = self.target()
        self.model = ctx.new_model(self.arch, purpose="dd/architecture")
        self.layout = param_layout(self.model)
        self._opt: torch.optim.Optimizer | None = None
        self._fixed_start: torch.Tensor | None = None

    def _load_pool(self) -> NetworkPool:
        p, ctx = self.params, self.ctx
        if not p.pool:
            raise ConfigError("method.init=pool needs method.pool=FOLDER (a pool made by `securedd pool`)")
        pool = load_pool(p.pool)
        if pool.model != ctx.config.model or pool.shape != ctx.spec.shape:
            raise ConfigError(f"the pool in {p.pool} holds {pool.model} networks for {pool.shape} images; this run "
                              f"uses {ctx.config.model} on {ctx.spec.shape}: set model={pool.model} or use another pool")
        if not 0 <= p.held_out < len(pool):
            raise ConfigError(f"method.held_out must leave at least one of the pool's {len(pool)} networks for "
                              f"distillation; got {p.held_out}")
        self._pool_starts: dict[int, torch.Tensor] = {}
        return pool

    def target(self) -> tuple[str, int, str]:
        """(architecture, fixed-init seed, init scheme) of the networks the set is made for."""
        p = self.params
        return self.ctx.config.model, (p.init_seed if p.init_seed >= 0 else self.ctx.seed), p.init_scheme

    # --- the learnable set ---------------------------------------------------------------

    def _labels(self, syn_labels: torch.Tensor) -> torch.Tensor:
        return syn_labels

    def init_synthetic(self) -> SyntheticSet:
        ctx, p = self.ctx, self.params
        gen = ctx.generator("init")
        images = init_images(p.image_init, ctx.spec, ctx.ipc, ctx.sampler, gen).detach().clone().requires_grad_(True)
        labels = self._labels(class_labels(ctx.spec.num_classes, ctx.ipc, images.device))
        raw = torch.full((len(self.plan),), _softplus_inverse(p.lr_init), device=images.device,
                         requires_grad=p.learn_lrs)
        return SyntheticSet(images, labels, extras={"raw_lrs": raw})

    def _learnables(self, syn: SyntheticSet) -> list[torch.Tensor]:
        return [syn.images, syn.extras["raw_lrs"]] if self.params.learn_lrs else [syn.images]

    def optimizer(self, syn: SyntheticSet) -> torch.optim.Optimizer:
        self._opt = torch.optim.Adam(self._learnables(syn), lr=self.params.lr, betas=(self.params.beta1, 0.999))
        return self._opt

    # --- one iteration -------------------------------------------------------------------

    def starts(self) -> list[torch.Tensor]:
        """The initial parameter vectors of this iteration's networks (fixed and pool ones built once)."""
        ctx, p = self.ctx, self.params
        if p.init == "fixed":
            if self._fixed_start is None:
                net = seeded_network(self.arch, ctx.spec.shape, ctx.spec.num_classes, self.init_seed,
                                     self.init_scheme, ctx.device)
                self._fixed_start = flat_params(net)
            return [self._fixed_start]
        if self.pool is not None:
            usable = len(self.pool) - p.held_out
            pick = torch.randint(usable, (p.nets_per_step,), generator=ctx.generator("dd/pool")).tolist()
            for i in pick:
                if i not in self._pool_starts:
                    self._pool_starts[i] = flat_params(self.pool.network(i, ctx.device))
            return [self._pool_starts[i] for i in pick]
        gen = ctx.generator("dd/networks")
        return [flat_params(reinitialise(ctx.new_model(self.arch, purpose="dd/networks"), self.init_scheme, gen))
                for _ in range(p.nets_per_step)]

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        p = self.params
        if self._opt is not None and p.decay_every > 0:
            for group in self._opt.param_groups:
                group["lr"] = p.lr * p.lr_decay ** (iteration // p.decay_every)
        x_real, y_real = self.ctx.sampler.balanced(max(1, p.batch_real // self.ctx.spec.num_classes))
        if self.relabel is not None:
            y_real = torch.where(y_real == self.relabel[0], self.relabel[1], y_real)
        lrs = F.softplus(syn.extras["raw_lrs"])

        def outer(theta: torch.Tensor) -> torch.Tensor:
            return outer_cross_entropy(self.model, theta, x_real, y_real, self.layout)

        total = sum(unrolled_loss(self.model, start.to(syn.images.dtype), syn.images, syn.labels, lrs, self.plan,
                                  outer, loss_fn=self.step_loss, memory=p.memory) for start in self.starts())
        assert isinstance(total, torch.Tensor)  # sum() of tensors: starts() is never empty (nets_per_step >= 1)
        yield total / (1 if p.init == "fixed" else p.nets_per_step)

    # --- what is stored ------------------------------------------------------------------

    def finalize(self, syn: SyntheticSet) -> SyntheticSet:
        extras = {k: v for k, v in syn.extras.items() if k != "raw_lrs"}
        labels = syn.labels.detach()
        if labels.is_floating_point() and self.step_loss is step_loss:
            labels = F.softmax(labels, dim=1)
        return SyntheticSet(syn.images.detach(), labels, F.softplus(syn.extras["raw_lrs"]).detach(), extras)

    def replay_hints(self) -> ReplayHints:
        """How evaluation replays the set: the architecture, the schedule's shape, the initialisation."""
        p = self.params
        pool = self.pool
        return ReplayHints(
            steps=self.steps, epochs=p.epochs, init=p.init, model=self.ctx.config.model, init_scheme=p.init_scheme,
            init_seed=self.init_seed if p.init == "fixed" else None,
            pool=str(pool.folder) if pool is not None else None,
            held_out=tuple(range(len(pool) - p.held_out, len(pool))) if pool is not None else None,
            relabel=self.relabel)

    def eval_hints(self) -> EvalHints:
        """The ``replay`` protocol: the learned steps applied to the networks the set was made for."""
        return EvalHints("replay", self.replay_hints())


@METHODS.register("sldd")
class SLDDMethod(DDMethod):
    """SLDD: DD that also learns one label-logit vector per image."""

    name = "sldd"
    Params = SLDDParams
    params: SLDDParams

    def __init__(self, params: SLDDParams, ctx: DistillContext) -> None:
        if params.label_init not in LABEL_INITS:
            raise ConfigError(f"method.label_init must be one of {', '.join(LABEL_INITS)}; got '{params.label_init}'")
        if params.label_targets not in LABEL_TARGETS:
            raise ConfigError(f"method.label_targets must be one of {', '.join(LABEL_TARGETS)}; "
                              f"got '{params.label_targets}'")
        super().__init__(params, ctx)
        self.step_loss = step_loss if params.label_targets == "softmax" else raw_step_loss

    def _labels(self, syn_labels: torch.Tensor) -> torch.Tensor:
        p = self.params
        logits = initial_label_logits(p.label_init, syn_labels, self.ctx.spec.num_classes, p.label_scale,
                                      self.ctx.generator("labels"))
        return logits.requires_grad_(True)

    def _learnables(self, syn: SyntheticSet) -> list[torch.Tensor]:
        return [*super()._learnables(syn), syn.labels]

    def replay_hints(self) -> ReplayHints:
        return dataclasses.replace(super().replay_hints(), labels="soft")


@dataclass(frozen=True)
class SecDDParams(SLDDParams):
    """SecDD: SLDD overfit to the one network of a key (architecture + initialisation seed).

    ``key``: the key file; created with a fresh random seed for the run's ``model`` when
    missing. ``mode``: ``learn`` (images learned), ``noise`` (images frozen as seeded
    standard-normal noise) or ``unrelated:DATASET`` (images frozen from another dataset,
    resized and re-normalised); in the frozen modes only the labels and rates are learned.
    Labels are unrestricted vectors (``label_targets="raw"``), as SecDD learns them.

    Adversarial SecDD (``adversaries`` > 0): every iteration also trains that many fresh
    networks that are not the key's (``adversary_models``, comma-separated; empty: the
    key's architecture, with new seeds and the default scheme) the way an eavesdropper
    would: ``adversary_epochs`` full-batch GD steps at ``adversary_lr`` on the set, against
    its labels as they are (``soft``) or their argmax (``hard``). Each one's cross-entropy
    on a real batch below chance (``log K``) is added, times ``adversary_weight``, to the
    loss: the set is pushed to teach them nothing, and no further (a set that taught them
    to be wrong would still say something).
    """

    label_targets: str = "raw"
    mode: str = "noise"
    key: str = ""
    adversaries: int = 0
    adversary_models: str = ""
    adversary_epochs: int = 10
    adversary_lr: float = 0.01
    adversary_labels: str = "soft"
    adversary_weight: float = 1.0


ADVERSARY_LABELS = ("soft", "hard")


def unrelated_images(name: str, spec: DatasetSpec, n: int, generator: torch.Generator,
                     root: str | Path | None = None) -> torch.Tensor:
    """``n`` random images of dataset ``name`` as images of ``spec``: channels, size, normalisation."""
    source = load_dataset(name, "train", root=root)
    index = torch.randperm(len(source), generator=generator)[:n]
    if len(index) < n:
        raise ConfigError(f"'{name}' has {len(source)} images; {n} are needed")
    return convert_images(source.images[index], source.spec, spec)


@METHODS.register("secdd")
class SecDDMethod(SLDDMethod):
    """SecDD: a set that trains only its key's network; the key never enters the artifact."""

    name = "secdd"
    Params = SecDDParams
    params: SecDDParams

    def __init__(self, params: SecDDParams, ctx: DistillContext) -> None:
        if not (params.mode in ("learn", "noise") or params.mode.startswith("unrelated:")):
            raise ConfigError(f"method.mode must be learn, noise or unrelated:DATASET; got '{params.mode}'")
        if params.init != "fixed":
            raise ConfigError("SecDD overfits one network: method.init must be 'fixed' (the key's network)")
        if params.init_seed >= 0:
            raise ConfigError("SecDD takes its network's seed from the key file (method.key), not method.init_seed")
        if not params.key:
            raise ConfigError("SecDD needs a key file: set method.key=PATH (created there, with a random seed, "
                              "when missing); keep it secret, the receiver needs it to train")
        if params.adversaries < 0 or params.adversary_epochs < 1 or not params.adversary_lr > 0 \
                or params.adversary_weight < 0 or params.adversary_labels not in ADVERSARY_LABELS:
            raise ConfigError("method.adversaries must be >= 0, adversary_epochs >= 1, adversary_lr > 0, "
                              f"adversary_weight >= 0 and adversary_labels one of {', '.join(ADVERSARY_LABELS)}; got "
                              f"{params.adversaries}, {params.adversary_epochs}, {params.adversary_lr}, "
                              f"{params.adversary_weight} and '{params.adversary_labels}'")
        super().__init__(params, ctx)
        names = [m for m in params.adversary_models.split(",") if m] or [self.arch]
        self.adversary_nets = [ctx.new_model(m, purpose="secdd/adversary-architecture") for m in names]
        self.adversary_layouts = [param_layout(net) for net in self.adversary_nets]
        self.adversary_plan = step_plan(ctx.spec.num_classes, ctx.ipc, 1, params.adversary_epochs, device=ctx.device)

    def target(self) -> tuple[str, int, str]:
        p = self.params
        path = Path(p.key)
        if path.exists():
            key = load_key(path)
        else:
            key = new_key(self.ctx.config.model, p.init_scheme)
            save_key(key, path)
            log.info("wrote a new SecDD key for %s to %s", key.model, path)
        self.key = key
        return key.model, key.seed, key.init_scheme

    def init_synthetic(self) -> SyntheticSet:
        syn = super().init_synthetic()
        mode, ctx = self.params.mode, self.ctx
        if mode == "learn":
            return syn
        n, gen = ctx.spec.num_classes * ctx.ipc, ctx.generator("secdd/images")
        if mode == "noise":
            images = torch.randn((n, *ctx.spec.shape), generator=gen, device=gen.device)
        else:
            images = unrelated_images(mode.split(":", 1)[1], ctx.spec, n, gen, ctx.config.data.root)
        return dataclasses.replace(syn, images=images.to(syn.images))

    def _learnables(self, syn: SyntheticSet) -> list[torch.Tensor]:
        learned = super()._learnables(syn)
        return learned if self.params.mode == "learn" else learned[1:]

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        for loss in super().losses(syn, iteration):
            yield loss + self.adversary_penalty(syn) if self.params.adversaries else loss

    def adversary_penalty(self, syn: SyntheticSet) -> torch.Tensor:
        """``adversary_weight`` x the mean, over fresh non-key networks trained on the set, of how far
        their cross-entropy on a real batch falls below chance (see :class:`SecDDParams`)."""
        p, ctx = self.params, self.ctx
        gen = ctx.generator("secdd/adversaries")
        x_real, y_real = ctx.sampler.balanced(max(1, p.batch_real // ctx.spec.num_classes))
        targets = syn.labels if p.adversary_labels == "soft" else syn.labels.detach().argmax(1)
        lrs = torch.full((len(self.adversary_plan),), p.adversary_lr, device=syn.images.device)
        chance = math.log(ctx.spec.num_classes)
        total = torch.zeros((), device=syn.images.device)
        for k in range(p.adversaries):
            net, layout = self.adversary_nets[k % len(self.adversary_nets)], self.adversary_layouts[k % len(self.adversary_nets)]
            start = flat_params(reinitialise(net, "default", gen)).to(syn.images.dtype)

            def outer(theta: torch.Tensor, net: torch.nn.Module = net, layout: Any = layout) -> torch.Tensor:
                return outer_cross_entropy(net, theta, x_real, y_real, layout)

            learnt = unrolled_loss(net, start, syn.images, targets, lrs, self.adversary_plan, outer,
                                   loss_fn=raw_step_loss if p.adversary_labels == "soft" else step_loss,
                                   memory=p.memory)
            total = total + F.relu(chance - learnt)
        return p.adversary_weight * total / p.adversaries

    def replay_hints(self) -> ReplayHints:
        """The key's network: neither its architecture nor its seed goes into the artifact."""
        return ReplayHints(steps=self.steps, epochs=self.params.epochs, init="key", labels="soft")

    def artifact_metadata(self) -> dict[str, Any]:
        return {**super().artifact_metadata(), "redact": ["model", "method.params.key"]}
