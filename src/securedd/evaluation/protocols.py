"""Evaluation protocols: how models are trained on a distilled set, as the set asks.

A method declares how its sets are evaluated (:meth:`securedd.distill.base.Method.eval_hints`)
as :class:`EvalHints`: a protocol's name from :data:`EVAL_PROTOCOLS` and that protocol's
typed fields. The artifact stores them as its ``evaluation`` metadata
(:meth:`EvalHints.to_dict`) and evaluation reads them back (:meth:`EvalHints.of`), then
asks the protocol to train and test models.

- ``sgd`` (the default; its name is left out of the metadata, as artifacts have always
  stored it): fresh models trained with SGD on the set (:mod:`securedd.evaluation.train_eval`),
  with the augmentation and CutMix the set asks for (:class:`SGDHints`, IDC).
- ``replay`` (DD, SLDD, SecDD): the set's learned GD steps (its ``lrs``) replayed on the
  networks it was made for (:class:`ReplayHints`): ``fixed`` (one seeded network),
  ``random`` (fresh seeded networks), ``pool`` (the pool's held-out networks) or ``key``
  (the network of a SecDD key).

A new protocol subclasses :class:`EvalProtocol` with its own frozen ``Hints`` dataclass
and registers an instance.

Example:
    >>> hints = EvalHints.build("replay", model="lenet", steps=2, epochs=3, init="fixed", init_scheme="xavier",
    ...                         init_seed=0)
    >>> EvalHints.from_dict(hints.to_dict()) == hints
    True
    >>> EvalHints.from_dict({"cutmix_prob": 0.5}).protocol  # old IDC metadata: no protocol name
    'sgd'
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from securedd.artifacts import Artifact
from securedd.config import EvalConfig, coerce
from securedd.data.spec import DatasetSpec, RealData
from securedd.errors import ArtifactError, ConfigError, MismatchError, did_you_mean
from securedd.evaluation.train_eval import EvalReport, evaluate_set
from securedd.models.init import seeded_network
from securedd.registry import Registry
from securedd.rng import derive_seed
from securedd.secure.keys import TargetKey
from securedd.training import TrainSettings, eval_settings, replay_steps
from securedd.training.pool import load_pool

__all__ = ["DEFAULT_PROTOCOL", "EVAL_PROTOCOLS", "REPLAY_INITS", "EvalHints", "EvalPlan", "EvalProtocol",
           "ReplayHints", "ReplayProtocol", "SGDHints", "SGDProtocol", "fresh_model"]

DEFAULT_PROTOCOL = "sgd"
REPLAY_INITS = ("fixed", "random", "pool", "key")

Init = Callable[[str, int], torch.nn.Module]


# --- the hints: what a set asks of its evaluation --------------------------------------------

@dataclass(frozen=True)
class SGDHints:
    """What the ``sgd`` protocol takes from a set (each ``None``: the protocol's default).

    ``dsa_strategy``: the augmentation to train with (instead of the dataset's);
    ``cutmix_prob``, ``cutmix_beta``: CutMix while training (IDC). Explicit evaluation
    settings win over them.
    """

    cutmix_prob: float | None = None
    cutmix_beta: float | None = None
    dsa_strategy: str | None = None


@dataclass(frozen=True)
class ReplayHints:
    """What the ``replay`` protocol needs: the learned schedule's shape and its networks.

    ``steps`` GD steps per epoch over ``epochs`` epochs, started from ``init``: ``fixed``
    (the network of ``model`` seeded with ``init_seed``), ``random`` (fresh networks of
    ``model``), ``pool`` (the networks of the pool folder ``pool`` whose indices are
    ``held_out``) or ``key`` (the network of a SecDD key, which names the architecture).
    ``init_scheme`` is how networks are initialised (``default`` when absent);
    ``relabel`` is DD's poisoning attack (class K taken for T); ``labels`` describes them.
    """

    steps: int
    epochs: int
    init: str
    model: str | None = None
    init_scheme: str | None = None
    init_seed: int | None = None
    pool: str | None = None
    held_out: tuple[int, ...] | None = None
    relabel: tuple[int, int] | None = None
    labels: str | None = None

    def __post_init__(self) -> None:
        if self.init not in REPLAY_INITS:
            raise ConfigError(f"replay init must be one of {', '.join(REPLAY_INITS)}; got '{self.init}'")
        if self.steps < 1 or self.epochs < 1:
            raise ConfigError(f"replay needs steps >= 1 and epochs >= 1; got steps={self.steps}, epochs={self.epochs}")
        if self.init != "key" and not self.model:
            raise ConfigError(f"replay init '{self.init}' needs the model the set was distilled for")
        if self.init == "fixed" and self.init_seed is None:
            raise ConfigError("replay init 'fixed' needs init_seed, the seed of the network the set was made for")
        if self.init == "pool" and (not self.pool or self.held_out is None):
            raise ConfigError("replay init 'pool' needs the pool folder and its held_out network indices")


@dataclass(frozen=True)
class EvalHints:
    """How a distilled set asks to be evaluated: a protocol of :data:`EVAL_PROTOCOLS` and its typed fields.

    ``fields`` is an instance of the protocol's ``Hints`` dataclass (``None``: its
    defaults, where it has them). Build with :meth:`build`, store with :meth:`to_dict`,
    read back with :meth:`from_dict` or :meth:`of`.
    """

    protocol: str = DEFAULT_PROTOCOL
    fields: Any = None

    def __post_init__(self) -> None:
        hints_type = EVAL_PROTOCOLS.get(self.protocol).Hints
        fields = self.fields
        if fields is None:
            try:
                fields = hints_type()
            except TypeError:
                raise ConfigError(f"evaluation protocol '{self.protocol}' needs its fields "
                                  f"({', '.join(f.name for f in dataclasses.fields(hints_type))})") from None
        if not isinstance(fields, hints_type):
            raise ConfigError(f"evaluation protocol '{self.protocol}' takes {hints_type.__name__} fields; "
                              f"got {type(fields).__name__}")
        object.__setattr__(self, "protocol", self.protocol.lower())
        object.__setattr__(self, "fields", fields)

    @classmethod
    def build(cls, protocol: str = DEFAULT_PROTOCOL, **fields: Any) -> EvalHints:
        """Hints of ``protocol`` with ``fields`` (checked as :meth:`from_dict` checks them, raising ConfigError)."""
        hints_type = EVAL_PROTOCOLS.get(protocol).Hints
        return cls(protocol, _typed_fields(hints_type, fields, protocol))

    def get_protocol(self) -> EvalProtocol:
        """The registered protocol these hints name."""
        return EVAL_PROTOCOLS.get(self.protocol)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: ``protocol`` (left out for the default ``sgd``) and every field that is set."""
        out: dict[str, Any] = {} if self.protocol == DEFAULT_PROTOCOL else {"protocol": self.protocol}
        for f in dataclasses.fields(self.fields):
            value = getattr(self.fields, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, where: str = "the evaluation hints") -> EvalHints:
        """Parse :meth:`to_dict`'s form (``None`` or ``{}``: plain ``sgd``), checking names and types.

        Raises:
            ArtifactError: the protocol is unknown, or a field is unknown, missing or of the
                wrong type; the message names ``where`` and the valid choices.
        """
        values = dict(data or {})
        name = str(values.pop("protocol", DEFAULT_PROTOCOL))
        if name not in EVAL_PROTOCOLS:
            raise ArtifactError(f"{where}: unknown evaluation protocol '{name}'.{did_you_mean(name, EVAL_PROTOCOLS)} "
                                f"Valid protocols: {', '.join(EVAL_PROTOCOLS)}. Evaluate it with the securedd that "
                                "made it, or register that protocol")
        try:
            return cls(name, _typed_fields(EVAL_PROTOCOLS.get(name).Hints, values, name))
        except ConfigError as exc:
            raise ArtifactError(f"{where}: {exc}") from None

    @classmethod
    def of(cls, art: Artifact) -> EvalHints:
        """The hints an artifact stores (its ``evaluation`` metadata)."""
        return cls.from_dict(art.metadata.get("evaluation"), where=f"{art.path or 'the artifact'}: evaluation metadata")


def _typed_fields(hints_type: type, values: Mapping[str, Any], protocol: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(hints_type)}
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(f"evaluation protocol '{protocol}' has no field '{unknown[0]}'."
                          f"{did_you_mean(unknown[0], known)} Its fields: {', '.join(known)}")
    types_ = typing.get_type_hints(hints_type)
    missing = [n for n, f in known.items() if n not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"evaluation protocol '{protocol}' needs {', '.join(missing)}")
    try:
        return hints_type(**{k: coerce(v, types_[k], f"evaluation.{k}") for k, v in values.items()})
    except TypeError as exc:
        raise ConfigError(f"evaluation protocol '{protocol}': {exc}") from None


# --- the protocols: how models are trained on a set -------------------------------------------

@dataclass(frozen=True)
class EvalPlan:
    """What :func:`~securedd.evaluation.train_eval.evaluate_set` runs for a set.

    ``steps``: GD steps per epoch of the learned schedule replayed (``None``: SGD);
    ``init(name, run)``: the network run ``run`` of architecture ``name`` starts from
    (``None``: a fresh default initialisation).
    """

    models: tuple[str, ...]
    runs: int
    settings: TrainSettings
    steps: int | None = None
    init: Init | None = field(default=None, compare=False)


class EvalProtocol:
    """How models are trained and tested on a set; subclasses set ``Hints`` and override :meth:`plan`.

    ``fresh_models``: the protocol trains freshly initialised models with SGD, so any
    SGD-based analysis (the audit's) applies to the set.
    """

    Hints: ClassVar[type] = SGDHints
    fresh_models: ClassVar[bool] = True

    def plan(self, hints: EvalHints, spec: DatasetSpec, cfg: EvalConfig, *, models: Sequence[str] | None,
             seed: int, key: TargetKey | None) -> EvalPlan:
        """Models, runs, settings and starting networks for evaluating a set with ``hints``.

        ``cfg`` is the evaluation asked for; ``models`` the architectures named explicitly
        (``None``: the protocol's choice).
        """
        raise NotImplementedError

    def evaluate(self, art: Artifact, test: RealData, cfg: EvalConfig, *, hints: EvalHints | None = None,
                 images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                 models: Sequence[str] | None = None, seed: int = 0, key: TargetKey | None = None, device: str = "cpu",
                 progress: bool = True) -> EvalReport:
        """Train models on ``art`` as :meth:`plan` says and test them on ``test``.

        ``images``, ``labels``: the set's training images (default: the artifact's as
        stored; a multi-formation set passes them decoded). ``hints`` default to the
        artifact's (:meth:`EvalHints.of`).
        """
        hints = hints or EvalHints.of(art)
        plan = self.plan(hints, art.spec, cfg, models=models, seed=seed, key=key)
        return evaluate_set(art.images if images is None else images, art.labels if labels is None else labels, test,
                            models=plan.models, runs=plan.runs, settings=plan.settings, seed=seed, lrs=art.lrs,
                            steps=plan.steps, init=plan.init, device=device, progress=progress)

    def apply_schedule(self, net: torch.nn.Module, art: Artifact, hints: EvalHints) -> torch.nn.Module:
        """``net`` after the set's learned GD steps (in place).

        Raises:
            MismatchError: the set holds no learned schedule (the default).
        """
        raise MismatchError(f"{art.path or 'the artifact'} holds no learned GD schedule to replay (method "
                            f"'{art.method}', evaluation protocol '{hints.protocol}'); only DD, SLDD and SecDD "
                            "sets have one")

    def held_out_networks(self, hints: EvalHints, spec: DatasetSpec) -> list[torch.nn.Module] | None:
        """The pool networks kept out of the distillation, loaded and checked; ``None``: the set has no pool."""
        return None


class SGDProtocol(EvalProtocol):
    """Fresh models trained with SGD on the set (the standard protocol)."""

    Hints = SGDHints

    def plan(self, hints: EvalHints, spec: DatasetSpec, cfg: EvalConfig, *, models: Sequence[str] | None,
             seed: int, key: TargetKey | None) -> EvalPlan:
        f: SGDHints = hints.fields
        settings = eval_settings(cfg, spec.dsa_strategy, hint_dsa_strategy=f.dsa_strategy,
                                 cutmix_prob=f.cutmix_prob, cutmix_beta=f.cutmix_beta)
        return EvalPlan(tuple(cfg.models), cfg.runs, settings)


class ReplayProtocol(EvalProtocol):
    """The set's learned GD steps replayed on the networks it was made for (DD, SLDD, SecDD)."""

    Hints = ReplayHints
    fresh_models = False

    def networks(self, hints: EvalHints, spec: DatasetSpec, *, models: Sequence[str] | None, runs: int, seed: int,
                 key: TargetKey | None = None) -> tuple[tuple[str, ...], int, Init]:
        """Architectures, runs and starting networks for replaying the schedule.

        The set was distilled for ``model``, which is used unless ``models`` names others.
        ``fixed`` rebuilds the one network the set was made for (one run: replaying it is
        deterministic); ``random`` draws ``runs`` fresh networks with the distillation's
        scheme; ``pool`` takes the pool's held-out networks, one run each; ``key`` the
        key's network (architecture, seed and scheme from ``key``).

        Raises:
            MismatchError: a ``key`` set without ``key``, or a pool set with no held-out network.
        """
        f: ReplayHints = hints.fields
        if f.init == "key":
            if key is None:
                raise MismatchError("this set trains only the network of its SecDD key: pass the key "
                                    "(`securedd train ARTIFACT --key KEY`, or key= here)")
            target = key
            return (tuple(models) if models else (target.model,)), 1, lambda name, run: seeded_network(
                name, spec.shape, spec.num_classes, target.seed, target.init_scheme)
        names = tuple(models) if models else (str(f.model),)
        scheme = f.init_scheme or "default"
        if f.init == "pool":
            pool, held_out = load_pool(str(f.pool)), list(f.held_out or ())
            if not held_out:
                raise MismatchError("the set was distilled on its whole pool: no held-out network to evaluate on")
            return names, len(held_out), lambda name, run: pool.network(held_out[run])
        if f.init == "fixed":
            init_seed = int(f.init_seed or 0)
            return names, 1, lambda name, run: seeded_network(name, spec.shape, spec.num_classes, init_seed, scheme)

        def fresh(name: str, run: int) -> torch.nn.Module:
            return seeded_network(name, spec.shape, spec.num_classes, derive_seed(seed, "eval", "replay", run), scheme)

        return names, runs, fresh

    def plan(self, hints: EvalHints, spec: DatasetSpec, cfg: EvalConfig, *, models: Sequence[str] | None,
             seed: int, key: TargetKey | None) -> EvalPlan:
        names, runs, init = self.networks(hints, spec, models=models, runs=cfg.runs, seed=seed, key=key)
        return EvalPlan(names, runs, eval_settings(cfg, spec.dsa_strategy), hints.fields.steps, init)

    def apply_schedule(self, net: torch.nn.Module, art: Artifact, hints: EvalHints) -> torch.nn.Module:
        if art.lrs is None:
            return super().apply_schedule(net, art, hints)
        return replay_steps(net, art.images, art.labels, art.lrs, hints.fields.steps, art.spec.num_classes)

    def held_out_networks(self, hints: EvalHints, spec: DatasetSpec) -> list[torch.nn.Module] | None:
        if hints.fields.init != "pool":
            return None
        names, runs, network = self.networks(hints, spec, models=None, runs=0, seed=0)
        return [network(names[0], run) for run in range(runs)]


EVAL_PROTOCOLS: Registry[EvalProtocol] = Registry("evaluation protocol")
EVAL_PROTOCOLS.register("sgd")(SGDProtocol())
EVAL_PROTOCOLS.register("replay")(ReplayProtocol())


def fresh_model(art: Artifact, model: str, cfg: EvalConfig, generator: torch.Generator,
                what: str = "this analysis") -> torch.nn.Module:
    """A fresh ``model`` trained with SGD on the set as its protocol says: the network that
    the audit and the SGD-based attacks (membership, DeepFool) probe.

    Raises:
        ConfigError: the set's protocol does not train fresh models (DD, SLDD, SecDD sets
            are learned step schedules for particular networks).
    """
    from securedd.models import create_model
    from securedd.training import train_model

    hints = EvalHints.of(art)
    protocol = hints.get_protocol()
    if not protocol.fresh_models:
        raise ConfigError(f"{what} trains a network on the set with SGD; a set evaluated by the '{hints.protocol}' "
                          "protocol (DD, SLDD, SecDD) is a learned step schedule for particular networks: evaluate "
                          "it with securedd evaluate instead")
    plan = protocol.plan(hints, art.spec, cfg, models=(model,), seed=0, key=None)
    net = create_model(model, art.spec.shape, art.spec.num_classes, generator=generator)
    return train_model(net, art.images.float(), art.labels, plan.settings, generator)
