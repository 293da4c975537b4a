"""The shared distillation loop and the method protocol.

A method registers under a short key and implements three things: how the synthetic set
starts (:meth:`Method.init_synthetic`), which optimiser updates it
(:meth:`Method.optimizer`) and, per iteration, the losses to step on
(:meth:`Method.losses`, a generator so a method can do work between its steps). The loop
owns iteration, seeding, optimiser steps, checkpoints, progress and callbacks. Coreset
methods have zero iterations: their ``init_synthetic`` is the whole selection.
A matching method also declares the kind of real signal it matches
(:attr:`Method.real_signal_kind`) and passes it, its real batches, its labels and its
networks through the run's :class:`~securedd.distill.hooks.Hooks` (``ctx.hooks``): the
seams where defences and attacks act, and what lets a federated round run as
:func:`run_method` from the global set.
:meth:`Method.loss_function` exposes a method's first loss as a function of the images,
for gradient checks; the default derived from ``losses`` fits most methods.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from tqdm.auto import tqdm

from securedd.config import MethodConfig, RunConfig, config_to_dict, parse_params
from securedd.data.sampler import ClassBalancedSampler, check_ipc
from securedd.data.spec import RealData
from securedd.distill.checkpoint import checkpoint_bytes, corrupt_checkpoint, read_checkpoint, run_identity
from securedd.distill.hooks import Hooks
from securedd.distill.synthetic import SyntheticSet
from securedd.errors import ConfigError, Diverged, Interrupted
from securedd.evaluation.protocols import EvalHints
from securedd.interrupt import StopOnInterrupt
from securedd.models import MODELS, create_model
from securedd.profiling import phase
from securedd.registry import Registry
from securedd.rng import make_generator
from securedd.store import atomic_write_bytes

__all__ = ["METHODS", "DistillContext", "DistillResult", "Method", "NoParams", "list_methods", "method_settings",
           "run_method"]

P = TypeVar("P")

log = logging.getLogger(__name__)

METHODS: Registry[type[Method[Any]]] = Registry("method")


@dataclass(frozen=True)
class NoParams:
    """A method without hyper-parameters of its own."""


class DistillContext:
    """What a method may use: the real data, its spec, IPC, device, named generators and the run's hooks.

    ``generator(purpose)`` returns the run's generator for that purpose, created on first
    use from the run seed; the loop checkpoints all of them.
    """

    def __init__(self, config: RunConfig, real: RealData, *, progress: bool = False,
                 hooks: Hooks | None = None) -> None:
        self.config = config
        self.progress = progress
        self.device = torch.device(config.device)
        self.real = real.to(self.device)
        self.spec = real.spec
        self.ipc = config.method.ipc
        self.seed = config.seed
        self._generators: dict[str, torch.Generator] = {}
        self.sampler = ClassBalancedSampler(self.real, self.generator("sampler"))
        self.hooks = hooks if hooks is not None else Hooks()
        self.classes = tuple(c for c, n in enumerate(real.class_counts().tolist()) if n > 0)
        """The classes the real data holds: all of them in a central run (the IPC check sees to
        it); a federated client's label-skewed shard may lack some, and the matching methods
        then match the classes it has and leave the others' images as they were sent."""

    def generator(self, purpose: str) -> torch.Generator:
        """The generator for ``purpose`` (created from the seed on first use)."""
        if purpose not in self._generators:
            self._generators[purpose] = make_generator(self.seed, purpose, device=self.device)
        return self._generators[purpose]

    def new_model(self, name: str | None = None, purpose: str = "model", **kwargs: Any) -> torch.nn.Module:
        """A freshly initialised model (default: the run's model) drawn from ``generator(purpose)``."""
        model = create_model(
            name or self.config.model, self.spec.shape, self.spec.num_classes,
            generator=self.generator(purpose), **kwargs,
        )
        return model.to(self.device)

    def generator_states(self) -> dict[str, torch.Tensor]:
        return {k: g.get_state() for k, g in self._generators.items()}

    def load_generator_states(self, states: Mapping[str, torch.Tensor]) -> None:
        for k, state in states.items():
            self.generator(k).set_state(state)

    def rewind_generators(self, states: Mapping[str, torch.Tensor]) -> None:
        """Set every generator back to ``states``; those created since restart from the seed."""
        for k, g in self._generators.items():
            g.set_state(states[k] if k in states else make_generator(self.seed, k, device=self.device).get_state())


class Method(Generic[P]):
    """Base class of distillation methods (see the module docstring), generic in its ``Params``."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[Any]] = NoParams
    default_iterations: ClassVar[int] = 0
    demo_rank: ClassVar[int] = 0  # the demo picks the highest-ranked method
    real_signal_kind: ClassVar[str | None] = None
    """The :class:`~securedd.distill.hooks.RealSignal` kind the method matches (``None``: it
    matches none, e.g. coresets and unrolled methods); federation needs one."""

    def __init__(self, params: P, ctx: DistillContext) -> None:
        self.params = params
        self.ctx = ctx

    @classmethod
    def parse_params(cls, values: Mapping[str, Any]) -> Any:
        """Build ``cls.Params`` from a dict, with a clear error for unknown keys or bad types."""
        common = [f.name for f in dataclasses.fields(MethodConfig) if f.name != "params"]
        return parse_params(cls.Params, values, owner=f"method '{cls.name}'", prefix="method.", common=common)

    def init_synthetic(self) -> SyntheticSet:
        """The starting synthetic set (for coresets: the selected real images)."""
        raise NotImplementedError

    def optimizer(self, syn: SyntheticSet) -> torch.optim.Optimizer | None:
        """The optimiser over the learnable synthetic tensors (``None``: nothing is learned)."""
        return None

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        """The losses of one iteration; the loop takes an optimiser step on each."""
        return iter(())

    def loss_function(self, syn: SyntheticSet) -> Callable[[torch.Tensor], torch.Tensor]:
        """The first loss of iteration 0 as a deterministic function of the synthetic images.

        For gradient checks (``torch.autograd.gradcheck``): the function replays
        :meth:`losses` on a copy of ``syn`` whose ``images`` are its argument, after rewinding
        every generator to its state at this call, and returns the first loss. Override it
        when a method's first loss depends on state the generators do not capture.
        """
        ctx, states = self.ctx, self.ctx.generator_states()

        def first_loss(images: torch.Tensor) -> torch.Tensor:
            ctx.rewind_generators(states)
            return next(iter(self.losses(dataclasses.replace(syn, images=images), 0)))

        return first_loss

    def finalize(self, syn: SyntheticSet) -> SyntheticSet:
        """The set to store once the run is over (e.g. learned parameterisations turned into
        stored values); the set itself by default."""
        return syn

    def eval_hints(self) -> EvalHints:
        """How evaluation trains models on the set: a protocol of
        :data:`~securedd.evaluation.protocols.EVAL_PROTOCOLS` and its fields; plain ``sgd`` by default."""
        return EvalHints()

    def artifact_metadata(self) -> dict[str, Any]:
        """Extra artifact metadata: ``evaluation`` (:meth:`eval_hints`, left out when they are the
        defaults) and, where a method adds it, ``decoder`` (how stored images decode into training images)."""
        hints = self.eval_hints().to_dict()
        return {"evaluation": hints} if hints else {}


@dataclass
class DistillResult:
    """A finished run: the synthetic set, the method's resolved params and a loss history."""

    synthetic: SyntheticSet
    method: str
    params: dict[str, Any]
    iterations: int
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


def list_methods() -> list[str]:
    """Registered method names."""
    return METHODS.names()


def run_method(
    config: RunConfig,
    real: RealData,
    *,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    callbacks: tuple[Callable[[int, float, SyntheticSet], None], ...] = (),
    hooks: Hooks | None = None,
    initial: SyntheticSet | None = None,
) -> DistillResult:
    """Run the configured method on ``real`` and return the synthetic set.

    Args:
        config: the run configuration (``config.method`` picks the method).
        real: the real training data.
        progress: show a progress bar over iterations.
        checkpoint: where to write checkpoints every ``config.method.checkpoint_every``
            iterations (atomically); with ``resume``, where to resume from. With a
            checkpoint, Ctrl-C (SIGINT, main thread) stops the run at the next iteration
            boundary: the checkpoint is written and :class:`~securedd.errors.Interrupted`
            raised; a second Ctrl-C aborts at once.
        resume: continue from ``checkpoint``, which must exist and have been written by
            this very run (same method, dataset, IPC, seed, model and config; see
            :mod:`securedd.distill.checkpoint`).
        callbacks: called as ``cb(iteration, loss, synthetic)`` after each iteration.
        hooks: the run's :class:`~securedd.distill.hooks.Hooks` (defences, attacks,
            experiments); bound to the run's context before the method starts.
        initial: start from this set instead of the method's own initialisation (a
            federated round starts from the global set); its images are copied, and the
            IPC check against ``real`` is skipped (a client's shard may be small).

    Raises:
        MismatchError: with ``resume``, the checkpoint belongs to a run of another config
            (the message names each field that differs).
        ArtifactError: with ``resume``, the checkpoint is truncated or corrupt.
    """
    method_cls = METHODS.get(config.method.name)
    params = method_cls.parse_params(config.method.params)
    MODELS.get(config.model)  # every method records it, so a misspelt one fails here, for coresets too
    if initial is None:
        check_ipc(real, config.method.ipc)
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if resume and (ckpt_path is None or not ckpt_path.is_file()):
        raise ConfigError(_nothing_to_resume(ckpt_path))
    iterations = config.method.iterations if config.method.iterations is not None else method_cls.default_iterations
    if iterations < 0:
        raise ConfigError(f"method.iterations must be >= 0; got {iterations}")
    identity = run_identity(method_settings(config)) if ckpt_path is not None else {}
    state = read_checkpoint(ckpt_path, identity, iterations) if resume and ckpt_path is not None else None
    ctx = DistillContext(config, real, progress=progress, hooks=hooks)
    ctx.hooks.bind(ctx)
    method = method_cls(params, ctx)
    start = time.perf_counter()
    if initial is None:
        syn = method.init_synthetic()
    else:
        syn = dataclasses.replace(initial, images=initial.images.detach().clone().to(ctx.device).requires_grad_(True),
                                  labels=initial.labels.to(ctx.device))
    opt = method.optimizer(syn)
    history: list[float] = []
    first = 0
    if state is not None and ckpt_path is not None:
        try:
            for name, tensor in syn.tensors().items():  # copy_ would broadcast a smaller tensor without a word
                if tuple(state["tensors"][name].shape) != tuple(tensor.shape):
                    raise ValueError(f"{name} has shape {tuple(state['tensors'][name].shape)}, the run's "
                                     f"{tuple(tensor.shape)}")
            syn.load_tensors(state["tensors"])
            if opt is not None and state["optimizer"] is not None:
                opt.load_state_dict(state["optimizer"])
            ctx.load_generator_states(state["generators"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise corrupt_checkpoint(ckpt_path, f"its state does not fit this run: {exc}") from None
        history, first = list(state["history"]), int(state["iteration"])
        log.info("resumed from %s at iteration %d", ckpt_path, first)
    every = config.method.checkpoint_every
    bar = tqdm(range(first, iterations), desc=f"distill {method_cls.name}", disable=not progress or iterations == 0,
               initial=first, total=iterations)
    # With a checkpoint file, the first Ctrl-C stops at the next iteration boundary (below).
    guard = StopOnInterrupt("the current iteration") if ckpt_path is not None and first < iterations else nullcontext()
    with guard as stop:
        for it in bar:
            total, steps = 0.0, 0
            for loss in _timed(method.losses(syn, it)):
                value = float(loss.detach())
                if not math.isfinite(value):
                    bar.close()
                    raise Diverged(_divergence_message(value, it, iterations, params, ckpt_path, every))
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
                    with phase("backward"):
                        loss.backward()
                    with phase("optimiser"):
                        opt.step()
                total += value
                steps += 1
            history.append(total / max(steps, 1))
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            ctx.hooks.after_iteration(it, history[-1], syn)
            for cb in callbacks:
                cb(it, history[-1], syn)
            stopping = stop is not None and stop.requested and it + 1 < iterations
            if ckpt_path is not None and (stopping or (every > 0 and (it + 1) % every == 0 and it + 1 < iterations)):
                opt_state = opt.state_dict() if opt is not None else None
                atomic_write_bytes(ckpt_path, checkpoint_bytes(it + 1, syn.tensors(), opt_state, ctx.generator_states(),
                                                               history, identity))
            if stopping:
                bar.close()
                raise Interrupted(ckpt_path, it + 1, iterations)  # type: ignore[arg-type]
    return DistillResult(method.finalize(syn), method_cls.name, dataclasses.asdict(params), iterations, history,
                         time.perf_counter() - start, method.artifact_metadata())


def _timed(losses: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    """The method's losses, the time spent computing each counted as the ``forward`` phase under
    ``--profile`` (for gradient and trajectory matching it includes the inner gradients matched;
    reading real data and augmenting are counted as their own phases)."""
    while True:
        with phase("forward"):
            loss = next(losses, None)
        if loss is None:
            return
        yield loss


def _nothing_to_resume(checkpoint: Path | None) -> str:
    if checkpoint is None:
        return "resuming needs a checkpoint file, and none was given (pass the artifact path with --out)"
    artifact = checkpoint.with_suffix("") if checkpoint.suffix == ".ckpt" else None
    finished = (f"; {artifact} exists: that run finished (a finished run removes its checkpoint)"
                if artifact is not None and artifact.is_file() else "")
    return (f"nothing to resume: there is no checkpoint at {checkpoint}{finished}. A run writes one every "
            "method.checkpoint_every iterations and on Ctrl-C; drop --resume to start afresh")


def _divergence_message(value: float, it: int, iterations: int, params: Any, checkpoint: Path | None,
                        every: int) -> str:
    rates = [f"method.{k}={v}" for k, v in dataclasses.asdict(params).items()
             if (k == "lr" or k.startswith("lr_")) and k != "lr_decay" and isinstance(v, float)]
    saved = (f"; {checkpoint} keeps the set as it was after iteration {it // every * every}"
             if checkpoint is not None and checkpoint.is_file() and every > 0 else "")
    return (f"the distillation loss became {value} at iteration {it + 1} of {iterations}: the optimisation diverged"
            f"{saved}. Lower the method's rates ({', '.join(rates) or 'its learning rates'}) and run again")


def method_settings(config: RunConfig) -> dict[str, Any]:
    """The run config before a run, with every setting of its method as the run will use it.

    Fills ``method.params`` with the method's defaults under the given values (checking
    them) and ``method.iterations`` with the method's default when unset: what the command
    line prints as the resolved config and the artifact records.

    >>> from securedd.config import apply_overrides
    >>> values = method_settings(apply_overrides(RunConfig(), ["method.name=dm", "method.ipc=1"]))
    >>> values["method"]["iterations"], values["method"]["params"]["batch_real"]
    (20000, 256)
    """
    method_cls = METHODS.get(config.method.name)
    params = dataclasses.asdict(method_cls.parse_params(config.method.params))
    values = config_to_dict(config)
    values["method"]["params"] = {k: v for k, v in params.items() if v is not None}
    values["method"]["iterations"] = (config.method.iterations if config.method.iterations is not None
                                      else method_cls.default_iterations)
    return values
