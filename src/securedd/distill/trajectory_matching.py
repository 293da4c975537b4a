"""Trajectory matching (MTT, Cazenavette et al. 2022) and its constant-memory form (TESLA).

Each iteration picks a random expert trajectory (see :mod:`securedd.distill.experts`) and a
random start epoch ``t < max_start_epoch``, starts a student at the expert's parameters
``θ*_t``, takes ``syn_steps`` differentiable SGD steps on minibatches of the synthetic set
with a learnable step size, and minimises

    ‖θ_student − θ*_{t+M}‖² / ‖θ*_t − θ*_{t+M}‖²,    M = expert_epochs.

Images are optimised with SGD (``lr_img``, momentum 0.5) and the step size with SGD
(``lr_lr``, momentum 0.5). The learned step size is saved as the artifact's ``lrs`` and is
the evaluation's SGD learning rate. With ``tesla=true`` the same gradients are computed with
memory that does not grow with ``syn_steps`` (:func:`securedd.distill.unroll.tesla_loss`).
With ``zca=true`` the images live in ZCA-whitened space, with the transform the experts
were trained with (stored beside them); it is saved in the artifact and evaluation whitens
the test split with it.

Real data is touched only at initialisation (:meth:`MTTMethod.real_images`); the experts
carry the rest of the real signal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from securedd.data.augment import DSA
from securedd.data.zca import ZCAWhitening
from securedd.distill.base import METHODS, DistillContext, Method
from securedd.distill.experts import ExpertSet
from securedd.distill.synthetic import INITS, SyntheticSet, class_labels, init_images
from securedd.distill.unroll import Student, plan_steps, tesla_loss, unrolled_loss
from securedd.errors import ConfigError, MismatchError
from securedd.models.functional import param_layout

__all__ = ["MTTMethod", "MTTParams"]


@dataclass(frozen=True)
class MTTParams:
    """MTT hyper-parameters (defaults: the reference implementation's; see src/securedd/presets/mtt.toml).

    ``experts`` is the folder written by ``securedd experts``. ``batch_syn`` 0 means the
    whole synthetic set per student step. ``dsa_strategy`` "" means the dataset's default.
    """

    experts: str = ""
    syn_steps: int = 20
    expert_epochs: int = 3
    max_start_epoch: int = 25
    lr_img: float = 1000.0
    lr_lr: float = 1e-5
    lr_teacher: float = 0.01
    batch_syn: int = 0
    momentum: float = 0.5
    zca: bool = False
    tesla: bool = False
    init: str = "real"
    dsa: bool = True
    dsa_strategy: str = ""


def _run_hint(ctx: DistillContext, params: MTTParams) -> str:
    zca = " --zca" if params.zca else ""
    return (f"`securedd experts --dataset {ctx.spec.name} --model {ctx.config.model}{zca} "
            f"--epochs {params.max_start_epoch + params.expert_epochs} --out {params.experts or 'EXPERTS_DIR'}`")


@METHODS.register("mtt")
class MTTMethod(Method[MTTParams]):
    """Matching training trajectories of experts trained on the real data."""

    name = "mtt"
    Params = MTTParams
    default_iterations = 5000

    def __init__(self, params: MTTParams, ctx: DistillContext) -> None:
        super().__init__(params, ctx)
        self._check_params()
        self.experts = self._open_experts()
        self.zca: ZCAWhitening | None = None
        self.dsa = DSA(params.dsa_strategy or ctx.spec.dsa_strategy) if params.dsa else None
        net = ctx.new_model(purpose="mtt/net")
        net.train()
        self.student = Student(net, self.dsa)
        self._check_experts_fit(net)

    def _check_params(self) -> None:
        p = self.params
        if p.init not in INITS:
            raise ConfigError(f"method.init must be one of {', '.join(INITS)}; got '{p.init}'")
        for key in ("syn_steps", "expert_epochs", "max_start_epoch"):
            if getattr(p, key) < 1:
                raise ConfigError(f"method.{key} must be >= 1; got {getattr(p, key)}")
        if p.batch_syn < 0:
            raise ConfigError(f"method.batch_syn must be >= 0 (0: the whole set); got {p.batch_syn}")

    def _open_experts(self) -> ExpertSet:
        ctx, p = self.ctx, self.params
        if not p.experts:
            raise ConfigError(f"method.experts is not set: train expert trajectories first with {_run_hint(ctx, p)} "
                              "and pass method.experts=<that folder>")
        try:
            return ExpertSet.open(p.experts)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (for this run: {_run_hint(ctx, p)})") from None

    def _check_experts_fit(self, net: torch.nn.Module) -> None:
        ctx, p, m = self.ctx, self.params, self.experts.manifest
        hint = f"train matching experts with {_run_hint(ctx, p)}"
        spec = self.experts.spec
        if spec != ctx.spec:
            raise MismatchError(f"the experts in '{p.experts}' were trained on '{spec.name}' {spec.shape} with "
                                f"{spec.num_classes} classes (mean {spec.mean}), not on this '{ctx.spec.name}' "
                                f"{ctx.spec.shape} with {ctx.spec.num_classes} classes (mean {ctx.spec.mean}); {hint}")
        if m["model"] != ctx.config.model:
            raise MismatchError(f"the experts in '{p.experts}' are '{m['model']}' networks but this run uses "
                                f"'{ctx.config.model}'; set model={m['model']} or {hint}")
        layout = [[name, list(shape)] for name, shape in param_layout(net)]
        if m["param_layout"] != layout:
            raise MismatchError(f"the experts in '{p.experts}' have another parameter layout than '{ctx.config.model}' "
                                f"here ({m['num_params']} parameters); {hint}")
        if bool(m["zca"]) != p.zca:
            state = "with" if m["zca"] else "without"
            raise MismatchError(f"the experts in '{p.experts}' were trained {state} ZCA whitening but method.zca="
                                f"{str(p.zca).lower()}; set method.zca={str(bool(m['zca'])).lower()} or {hint}")
        self.zca = self.experts.zca()  # the experts' own transform: the space their parameters live in
        if p.max_start_epoch + p.expert_epochs > self.experts.epochs:
            raise ConfigError(
                f"max_start_epoch ({p.max_start_epoch}) + expert_epochs ({p.expert_epochs}) exceeds the experts' "
                f"{self.experts.epochs} epochs; lower them or {hint}"
            )

    def real_images(self, c: int, n: int) -> torch.Tensor:
        """``n`` random real images of class ``c`` (whitened with ZCA when on): the only access to real data."""
        images = self.ctx.sampler.sample(c, n)
        return self.zca.transform_normalised(images, self.ctx.spec) if self.zca is not None else images

    def init_synthetic(self) -> SyntheticSet:
        ctx, p = self.ctx, self.params
        if p.init == "real":
            images = torch.cat([self.real_images(c, ctx.ipc) for c in range(ctx.spec.num_classes)])
        else:
            images = init_images("noise", ctx.spec, ctx.ipc, ctx.sampler, ctx.generator("init"))
        images = images.detach().clone().requires_grad_(True)
        lrs = torch.tensor([p.lr_teacher], device=ctx.device).requires_grad_(True)
        extras = {k: v.to(ctx.device) for k, v in self.zca.to_tensors().items()} if self.zca is not None else {}
        return SyntheticSet(images, class_labels(ctx.spec.num_classes, ctx.ipc, ctx.device), lrs, extras)

    def optimizer(self, syn: SyntheticSet) -> torch.optim.Optimizer:
        p = self.params
        return torch.optim.SGD([{"params": [syn.images], "lr": p.lr_img}, {"params": [syn.lrs], "lr": p.lr_lr}],
                               lr=p.lr_img, momentum=p.momentum)

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        ctx, p = self.ctx, self.params
        assert syn.lrs is not None
        lr = float(syn.lrs.detach())
        if not lr > 0:
            raise ConfigError(
                f"the learned step size became {lr:.3g} before iteration {iteration}: method.lr_lr ({p.lr_lr:g}) is too "
                "large for these experts; lower it (e.g. ten-fold) and run again"
            )
        pick = ctx.generator("mtt/expert")
        expert = int(torch.randint(len(self.experts), (1,), generator=pick, device=pick.device))
        start_epoch = int(torch.randint(p.max_start_epoch, (1,), generator=pick, device=pick.device))
        epochs = (start_epoch, start_epoch + p.expert_epochs)
        start, target = (t.to(ctx.device, syn.images.dtype) for t in self.experts.snapshots(expert, epochs))
        n = syn.images.shape[0]
        steps = plan_steps(n, p.syn_steps, p.batch_syn or n, ctx.generator("mtt/batch"), self.dsa,
                           tuple(syn.images.shape[-2:]))  # type: ignore[arg-type]
        unroll = tesla_loss if p.tesla else unrolled_loss
        yield unroll(self.student, start, target, syn.images, syn.labels, syn.lrs, steps)
