"""An eavesdropper who trains its own networks on an intercepted SecDD set.

Three attacks: :class:`TrainOnIntercept` (``train-on-intercept``) trains fresh networks;
:class:`PretrainedFinetune` (``pretrained-finetune``) first pretrains them on public data
of another task; :class:`KDFromLabels` (``kd-from-labels``) passes what a network trained on
the intercept learnt to a student, through the attacker's own unlabelled images.

The key search (:mod:`securedd.attacks.key_search`) replays the set's learned schedule on
candidate networks. An eavesdropper need not replay anything: it can train any network in
any way on the intercepted images and their labels. :class:`TrainOnIntercept`
(``train-on-intercept``) does that for every combination of

- an architecture (ConvNet-3, LeNet, MLP, ResNet-18 by default: any that fits the images);
- a protocol: ``plain`` (300 epochs without augmentation) or ``dsa`` (1000 epochs with the
  dataset's differentiable augmentation), as the standard evaluation trains fresh models;
- the labels: ``soft`` (the set's label distributions, cross-entropy against them) or
  ``hard`` (their argmax);
- an optimiser (``sgd`` with momentum 0.9, the protocol's; ``adam``);
- a learning rate from a small sweep.

The attacker picks each combination's learning rate, and its overall best attack, by
accuracy on its *own* labelled validation images (public data of the same task, disjoint
from the test split), never by the test split; the report gives the test accuracy of what
it picked, beside the key holder's (with the key, for the comparison only).

Threat model: the eavesdropper holds the artifact as sent (images, labels, the replay
protocol's metadata), knows the task and has a few labelled images of it for validation,
but not the key (the target architecture and its initialisation seed).

Example:
    >>> InterceptParams(models=("mlp",), protocols=("plain",), lrs=(0.01,)).arms(True)[0]
    ('mlp', 'plain', 'soft', 'sgd')
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from securedd.artifacts import Artifact
from securedd.attacks.base import ATTACKS, Attack, AttackResult
from securedd.config import EvalConfig
from securedd.data.spec import DatasetSpec, RealData
from securedd.errors import ConfigError
from securedd.models import MODELS, create_model
from securedd.models.protocols import has_linear_head
from securedd.rng import make_generator
from securedd.secure.keys import TargetKey
from securedd.training import TrainSettings, eval_settings, score_model, train_model
from securedd.training.settings import OPTIMIZERS

__all__ = ["FinetuneParams", "FinetuneTarget", "InterceptArm", "InterceptParams", "InterceptResult", "InterceptTarget",
           "KDFromLabels", "KDParams", "KDResult", "PROTOCOLS", "PretrainedFinetune", "TrainOnIntercept",
           "attacker_validation", "public_images"]

PROTOCOLS = ("plain", "dsa")
LABELS = ("soft", "hard")


def attacker_validation(train: RealData, per_class: int) -> RealData:
    """The attacker's own labelled images: ``per_class`` training images of each class, seeded."""
    from securedd.rng import make_generator

    if per_class < 1:
        raise ConfigError(f"the attacker's validation (--validation) needs >= 1 image per class; got {per_class}")
    gen = make_generator(0, "attack", "validation")
    keep = []
    for c in range(train.spec.num_classes):
        of_class = torch.nonzero(train.labels == c).flatten()
        keep.append(of_class[torch.randperm(len(of_class), generator=gen)[:per_class]])
    return train.subset(torch.cat(keep))


def public_images(data: RealData, n: int, spec: DatasetSpec) -> RealData:
    """``n`` of ``data``'s images (seeded), converted to ``spec``'s shape and normalisation, labels kept."""
    from securedd.data.convert import convert_images
    from securedd.rng import make_generator

    if n < 1:
        raise ConfigError(f"the attacker's public images (--public-images) need n >= 1; got {n}")
    pick = torch.randperm(len(data), generator=make_generator(0, "attack", "public"))[:n]
    return RealData(convert_images(data.images[pick], data.spec, spec), data.labels[pick],
                    dataclasses.replace(spec, name=data.spec.name, num_classes=data.spec.num_classes,
                                        class_names=data.spec.class_names))


@dataclass(frozen=True)
class InterceptTarget:
    """The intercepted artifact, the attacker's own ``validation`` images and the ``test`` split.

    ``true_key``: the real key, only to report the key holder's accuracy beside the attacks.
    """

    artifact: Artifact
    validation: RealData
    test: RealData
    true_key: TargetKey | None = None


@dataclass(frozen=True)
class InterceptParams:
    """The combinations the attacker tries, each with every learning rate of ``lrs``.

    ``epochs``: every protocol's epochs (``None``: 300 for ``plain``, 1000 for ``dsa``).
    """

    models: tuple[str, ...] = ("convnet", "lenet", "mlp", "resnet18")
    protocols: tuple[str, ...] = PROTOCOLS
    labels: tuple[str, ...] = LABELS
    optimizers: tuple[str, ...] = ("sgd",)
    lrs: tuple[float, ...] = (0.001, 0.01, 0.1)
    epochs: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name, given, allowed in (("protocols", self.protocols, PROTOCOLS), ("labels", self.labels, LABELS),
                                     ("optimizers", self.optimizers, OPTIMIZERS)):
            unknown = [v for v in given if v not in allowed]
            if not given or unknown:
                raise ConfigError(f"attack.{name} takes one or more of {', '.join(allowed)}; got "
                                  f"{', '.join(map(str, given)) or 'none'}")
        if not self.models:
            raise ConfigError("attack.models needs at least one architecture")
        for name in self.models:
            MODELS.get(name)
        if not self.lrs or any(not lr > 0 for lr in self.lrs):
            raise ConfigError(f"attack.lrs needs positive learning rates; got {self.lrs}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"attack.epochs must be >= 1; got {self.epochs}")

    def arms(self, soft: bool) -> list[tuple[str, str, str, str]]:
        """(model, protocol, labels, optimiser) combinations; ``soft``: the set has soft labels
        (a hard-label set has only ``hard``)."""
        labels = self.labels if soft else ("hard",)
        return list(itertools.product(self.models, self.protocols, dict.fromkeys(labels), self.optimizers))

    def train_settings(self, protocol: str, optimizer: str, lr: float, dsa_strategy: str) -> TrainSettings:
        """The standard protocol's training, with this optimiser and learning rate."""
        base = eval_settings(EvalConfig(epochs=self.epochs, dsa=protocol == "dsa"), dsa_strategy)
        return dataclasses.replace(base, lr=lr, optimizer=optimizer)


@dataclass(frozen=True)
class InterceptArm:
    """One trained network: its combination, learning rate and accuracies (%)."""

    model: str
    protocol: str
    labels: str
    optimizer: str
    lr: float
    validation_accuracy: float
    test_accuracy: float

    @property
    def combination(self) -> tuple[str, str, str, str]:
        return self.model, self.protocol, self.labels, self.optimizer


@dataclass
class InterceptResult(AttackResult):
    """Every network the attacker trained, and the key holder's accuracy when the key was given."""

    arms: list[InterceptArm] = field(default_factory=list)
    key_accuracy: float | None = None

    def picks(self) -> list[InterceptArm]:
        """Each combination at the learning rate the attacker picks: the best on its validation images."""
        best: dict[tuple[str, str, str, str], InterceptArm] = {}
        for arm in self.arms:
            held = best.get(arm.combination)
            if held is None or arm.validation_accuracy > held.validation_accuracy:
                best[arm.combination] = arm
        return list(best.values())

    @property
    def pick(self) -> InterceptArm:
        """The attacker's best attack, chosen on its validation images."""
        return max(self.picks(), key=lambda arm: arm.validation_accuracy)

    @property
    def best_on_test(self) -> InterceptArm:
        """The best of the picks on the test split (an upper bound the attacker cannot know)."""
        return max(self.picks(), key=lambda arm: arm.test_accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {"arms": [dataclasses.asdict(a) for a in self.arms], "picks": [dataclasses.asdict(a) for a in
                                                                             self.picks()],
                "pick": dataclasses.asdict(self.pick), "best_on_test": dataclasses.asdict(self.best_on_test),
                "key_accuracy": self.key_accuracy}

    @property
    def summary(self) -> str:
        pick = self.pick
        text = (f"best attack (picked on the attacker's validation images): {pick.model}, {pick.protocol}, "
                f"{pick.labels} labels, {pick.optimizer} lr {pick.lr:g}: test accuracy {pick.test_accuracy:.2f}%")
        if self.key_accuracy is not None:
            share = pick.test_accuracy / self.key_accuracy if self.key_accuracy > 0 else float("nan")
            text += f"; key holder {self.key_accuracy:.2f}% ({100 * share:.0f}% of it)"
        return text


@ATTACKS.register("train-on-intercept")
class TrainOnIntercept(Attack[InterceptTarget, InterceptResult]):
    """Train fresh networks on an intercepted set every standard way; report the best the attacker can pick.

    Threat model: an eavesdropper holds the artifact as sent (images, labels, metadata),
    knows the task and has a few labelled images of it of its own for validation, but not
    the key (architecture and initialisation seed). It trains any network the standard ways
    and keeps what its validation images say is best.

    Paper: Wang, Zhu, Torralba and Efros, "Dataset Distillation", arXiv:1811.10959 (2018),
    whose fixed-initialisation sets the SecDD setting builds on; the standard protocols are
    those of Zhao, Mopuri and Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021.
    """

    name = "train-on-intercept"
    Params = InterceptParams

    def run(self, target: InterceptTarget, *, progress: bool = False) -> InterceptResult:
        return _sweep(self.params, target, _fresh(target.artifact.spec), self.name, progress)


def _fresh(spec: DatasetSpec) -> Callable[[str, torch.Generator], torch.nn.Module]:
    """``(model, generator) -> network`` for ``spec``'s images, with a clear error for one that cannot take them."""

    def fresh(model: str, generator: torch.Generator) -> torch.nn.Module:
        try:
            return create_model(model, spec.shape, spec.num_classes, generator=generator)
        except Exception as exc:  # noqa: BLE001 - the registry's models raise their own errors for a shape
            raise ConfigError(f"architecture '{model}' cannot take {spec.shape} images ({exc}); leave it out "
                              f"of attack.models") from None

    return fresh


def _public(target: FinetuneTarget, attack: str, what: str) -> RealData:
    """The target's public images, which must be in the artifact's shape."""
    shape = target.artifact.spec.shape
    if target.public is None or target.public.spec.shape != shape:
        raise ConfigError(f"{attack} needs {what} in the artifact's shape {shape}; got "
                          f"{None if target.public is None else target.public.spec.shape} (convert them with "
                          "securedd.data.convert.convert_images)")
    return target.public


def _sweep(p: InterceptParams, target: InterceptTarget,
           network: Callable[[str, torch.Generator], torch.nn.Module], name: str, progress: bool,
           keep: list[torch.nn.Module] | None = None) -> InterceptResult:
    """Train ``network(model, generator)`` on the intercept for every arm and learning rate; score each.

    ``keep``: receives the network of the best validation accuracy (the attacker's pick).
    """
    from tqdm.auto import tqdm

    art = target.artifact
    spec = art.spec
    for data, what in ((target.validation, "validation"), (target.test, "test")):
        if data.spec.shape != spec.shape or data.spec.num_classes != spec.num_classes:
            raise ConfigError(f"the {what} images are {data.spec.shape} in {data.spec.num_classes} classes; the "
                              f"artifact's are {spec.shape} in {spec.num_classes}")
    images = art.images.float()
    soft = art.labels.is_floating_point()
    labels = {"soft": art.labels.float() if soft else art.labels,
              "hard": art.labels.argmax(1) if soft else art.labels}
    result = InterceptResult()
    runs = [(arm, lr) for arm in p.arms(soft) for lr in p.lrs]
    for k, ((model, protocol, label, optimizer), lr) in enumerate(tqdm(runs, desc=name, disable=not progress)):
        gen = make_generator(p.seed, name, k)
        net = network(model, gen)
        train_model(net, images, labels[label], p.train_settings(protocol, optimizer, lr, spec.dsa_strategy), gen)
        result.arms.append(InterceptArm(model, protocol, label, optimizer, lr,
                                        score_model(net, target.validation).accuracy,
                                        score_model(net, target.test).accuracy))
        if keep is not None and result.arms[-1] is result.pick:
            keep[:] = [net]
    if target.true_key is not None:
        from securedd.attacks.key_search import replay_key

        result.key_accuracy = replay_key(art, target.true_key, target.test).accuracy
    return result


@dataclass(frozen=True)
class FinetuneTarget(InterceptTarget):
    """:class:`InterceptTarget` and ``public``: labelled images of another task, already in the
    artifact's shape (:func:`~securedd.data.convert.convert_images`), to pretrain on."""

    public: RealData | None = None


@dataclass(frozen=True)
class FinetuneParams(InterceptParams):
    """:class:`InterceptParams` for the fine-tuning, and the pretraining on the public images:
    ``pretrain_epochs`` of SGD (momentum 0.9, batches of 256, no augmentation) at ``pretrain_lr``."""

    models: tuple[str, ...] = ("convnet",)
    pretrain_epochs: int = 5
    pretrain_lr: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pretrain_epochs < 1 or not self.pretrain_lr > 0:
            raise ConfigError(f"attack.pretrain_epochs must be >= 1 and attack.pretrain_lr > 0; got "
                              f"{self.pretrain_epochs} and {self.pretrain_lr}")


@ATTACKS.register("pretrained-finetune")
class PretrainedFinetune(Attack[FinetuneTarget, InterceptResult]):
    """Pretrain a network on public data of another task, then fine-tune it on an intercepted set.

    Threat model: the eavesdropper of ``train-on-intercept`` (the artifact as sent, a few
    labelled images of the task for validation, no key) also holds a public labelled
    dataset of another task. It pretrains each architecture on it, puts a fresh classifier
    on the features and fine-tunes the whole network on the intercept every standard way,
    picking on its validation images.

    Paper: the transfer setting of Yosinski, Clune, Bengio and Lipson, "How transferable are
    features in deep neural networks?", NeurIPS 2014, turned on the fixed-initialisation
    sets of Wang, Zhu, Torralba and Efros, "Dataset Distillation", arXiv:1811.10959 (2018).
    """

    name = "pretrained-finetune"
    Params = FinetuneParams

    def run(self, target: FinetuneTarget, *, progress: bool = False) -> InterceptResult:
        p: FinetuneParams = self.params
        spec = target.artifact.spec
        public = _public(target, self.name, "public images")
        pretrained: dict[str, torch.nn.Module] = {}
        for model in p.models:
            gen = make_generator(p.seed, self.name, "pretrain", model)
            net = create_model(model, spec.shape, public.spec.num_classes, generator=gen)
            if not has_linear_head(net):
                raise ConfigError(f"architecture '{model}' has no separate classifier to replace; leave it out of "
                                  "attack.models")
            settings = TrainSettings(epochs=p.pretrain_epochs, lr=p.pretrain_lr, dsa_strategy=None)
            pretrained[model] = train_model(net, public.images.float(), public.labels, settings, gen)

        def tuned(model: str, generator: torch.Generator) -> torch.nn.Module:
            net = copy.deepcopy(pretrained[model])
            old = net.classifier
            if not isinstance(old, torch.nn.Linear):
                raise ConfigError(f"architecture '{model}' has a classifier that is not one linear layer")
            head = torch.nn.Linear(old.in_features, spec.num_classes)
            bound = 1 / head.in_features ** 0.5
            with torch.no_grad():
                head.weight.uniform_(-bound, bound, generator=generator)
                head.bias.uniform_(-bound, bound, generator=generator)
            net.classifier = head
            return net

        return _sweep(p, target, tuned, self.name, progress)


@dataclass(frozen=True)
class KDParams(InterceptParams):
    """:class:`InterceptParams` for the teacher (trained on the intercept, picked on the
    validation images), and the student: ``student`` trained ``student_epochs`` on the
    attacker's unlabelled images with the teacher's class probabilities at ``temperature``
    as its targets (SGD, ``student_lr``, no augmentation)."""

    models: tuple[str, ...] = ("convnet",)
    student: str = "convnet"
    student_epochs: int = 30
    student_lr: float = 0.01
    temperature: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        MODELS.get(self.student)
        if self.student_epochs < 1 or not self.student_lr > 0 or not self.temperature > 0:
            raise ConfigError(f"attack.student_epochs must be >= 1, attack.student_lr > 0 and attack.temperature > 0; "
                              f"got {self.student_epochs}, {self.student_lr} and {self.temperature}")


@dataclass
class KDResult(AttackResult):
    """The teacher's sweep (an :class:`InterceptResult`) and the student's accuracies (%)."""

    teacher: InterceptResult
    student_validation_accuracy: float
    student_test_accuracy: float
    public_images: int

    def to_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.to_dict(), "student_validation_accuracy": self.student_validation_accuracy,
                "student_test_accuracy": self.student_test_accuracy, "public_images": self.public_images,
                "key_accuracy": self.teacher.key_accuracy}

    @property
    def summary(self) -> str:
        text = (f"student on {self.public_images} unlabelled images of the attacker's: test accuracy "
                f"{self.student_test_accuracy:.2f}% (its teacher, trained on the intercept: "
                f"{self.teacher.pick.test_accuracy:.2f}%)")
        if self.teacher.key_accuracy is not None:
            text += f"; key holder {self.teacher.key_accuracy:.2f}%"
        return text


@ATTACKS.register("kd-from-labels")
class KDFromLabels(Attack[FinetuneTarget, KDResult]):
    """Distil what an intercepted set's labels teach into a student, through the attacker's own unlabelled images.

    Threat model: the eavesdropper of ``train-on-intercept`` (the artifact as sent, a few
    labelled images of the task for validation, no key) also holds unlabelled images of
    the task (``public``; their labels are never read). The set's labels are its only
    semantic content: a teacher trained on the intercept (the sweep's pick) labels the
    attacker's images with its class probabilities, and a student learns from those.

    Paper: Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network",
    arXiv:1503.02531 (2015), with the teacher trained on a set distilled as in Wang, Zhu,
    Torralba and Efros, "Dataset Distillation", arXiv:1811.10959 (2018).
    """

    name = "kd-from-labels"
    Params = KDParams

    def run(self, target: FinetuneTarget, *, progress: bool = False) -> KDResult:
        p: KDParams = self.params
        spec = target.artifact.spec
        public = _public(target, self.name, "the attacker's unlabelled images")
        teacher_net: list[torch.nn.Module] = []
        teacher = _sweep(p, target, _fresh(spec), self.name, progress, keep=teacher_net)
        net = teacher_net[0].eval()
        images = public.images.float()
        with torch.no_grad():
            targets = torch.cat([torch.softmax(net(chunk) / p.temperature, 1) for chunk in images.split(1024)])
        gen = make_generator(p.seed, self.name, "student")
        student = create_model(p.student, spec.shape, spec.num_classes, generator=gen)
        train_model(student, images, targets, TrainSettings(epochs=p.student_epochs, lr=p.student_lr), gen)
        return KDResult(teacher, score_model(student, target.validation).accuracy,
                        score_model(student, target.test).accuracy, len(public))
