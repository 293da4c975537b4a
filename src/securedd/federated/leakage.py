"""The honest-but-curious server's leakage attack on one SFDD round (REFERENCE section 4).

The server holds the global set ``S^g`` it sent and the set ``S_i`` a worker returned. In a
round of one matching step (IPC 1's schedule, or ``method.outer_loop=1``) the worker's
change is ``S_i - S^g = -lr_img * dL/dS``, where ``L`` sums over classes the distance
between the network's gradients on ``S^g``'s class-c images and on the worker's real batch
of class c. The server knows the protocol, the batch size and (in the paper's strongest
setting) the worker's network initialisation. It starts from a random dummy batch and
runs L-BFGS on it so that the same step computed on the dummy batch reproduces the
observed change (squared L2). LDPO-RLD makes the worker match against soft labels the
server does not know; it still assumes one-hot ones.

Metrics: the paper's MSE between the per-channel standardised reconstruction and real
batch (about 2 means no information), and PSNR and SSIM in [0, 1] pixel space. Within a
class the order of a batch is lost (the step is the same for any order), so each dummy
image is paired with a real one by a minimum-cost assignment first. With
``learn_labels`` the server also learns a label distribution per dummy image and the
label recovery is the share whose arg-max is the true class.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from skimage.metrics import structural_similarity
from tqdm.auto import tqdm

from securedd.config import RunConfig
from securedd.data.spec import DatasetSpec, RealData
from securedd.defences import Defence
from securedd.distill.gradient_matching import DCMethod, DCParams, gradient_distance, loop_schedule
from securedd.distill.hooks import Hooks
from securedd.errors import ConfigError
from securedd.federated.client import local_update
from securedd.models import create_model
from securedd.rng import make_generator

__all__ = ["LeakageResult", "LeakageSettings", "WorkerRound", "emulated_step", "leakage_attack", "observe_round",
           "psnr", "standardised_mse"]


@dataclass(frozen=True)
class LeakageSettings:
    """The attack's budget and knowledge."""

    iterations: int = 300
    """L-BFGS steps (each up to ``inner`` evaluations of the emulated round)."""
    inner: int = 20
    lr: float = 1.0
    history: int = 100
    know_init: bool = True
    """The paper's strongest setting: the server has the worker's network initialisation."""
    learn_labels: bool = False
    """Also reconstruct the labels (a distribution per image) and report their recovery."""
    seed: int | None = None
    """Seed of the dummy batch (None: 0; the registered attack uses the target run's seed)."""

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.inner < 1 or self.history < 1 or self.lr <= 0:
            raise ConfigError(f"the leakage attack needs iterations, inner and history >= 1 and lr > 0; got "
                              f"iterations={self.iterations}, inner={self.inner}, history={self.history}, "
                              f"lr={self.lr}")


@dataclass
class WorkerRound:
    """One worker's round as the experiment sees it: what the server gets, and the truth."""

    sent: torch.Tensor
    returned: torch.Tensor
    labels: torch.Tensor
    net: torch.nn.Module
    real: list[torch.Tensor]
    lr_img: float
    distance: str
    model: str


@dataclass
class LeakageResult:
    """The reconstruction beside the worker's real batch, and how close it came."""

    real: torch.Tensor
    reconstruction: torch.Tensor
    labels: torch.Tensor
    mse: float
    psnr: float
    ssim: float
    label_accuracy: float | None
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"images": len(self.labels), "standardised_mse": round(self.mse, 4), "psnr": round(self.psnr, 3),
                "ssim": round(self.ssim, 4), "label_accuracy": self.label_accuracy,
                "final_match_loss": self.losses[-1] if self.losses else None}


def observe_round(config: RunConfig, shard: RealData, images: torch.Tensor, labels: torch.Tensor, *,
                  client: int = 0, round_: int = 0, defence: Defence[Any] | None = None) -> WorkerRound:
    """Run one worker's round (:func:`local_update`) and keep its network and real batches."""
    if config.method.name != "dc":
        raise ConfigError("the leakage attack emulates DC's step without augmentation; use method.name=dc")
    params: DCParams = DCMethod.parse_params(config.method.params)
    if params.dsa:
        raise ConfigError("the leakage attack emulates DC's step without augmentation; set method.dsa=false")
    outer = params.outer_loop or loop_schedule(config.method.ipc)[0]
    if outer != 1:
        raise ConfigError(f"the leakage attack emulates a round of one matching step; this schedule has "
                          f"{outer} (set method.outer_loop=1)")
    seen = _Witness()
    returned, _ = local_update(config, shard, images, labels, client=client, round_=round_, defence=defence,
                               hooks=(seen,))
    if seen.net is None:
        raise ConfigError("the worker's round drew no network")
    return WorkerRound(images.detach().clone(), returned, labels, seen.net, seen.real, params.lr_img,
                       params.distance, config.model)


class _Witness(Hooks):
    """The experiment's ground truth: the round's first network and every real batch the worker drew."""

    def __init__(self) -> None:
        self.net: torch.nn.Module | None = None
        self.real: list[torch.Tensor] = []

    def network(self, net: torch.nn.Module) -> None:
        if self.net is None:
            self.net = copy.deepcopy(net)

    def real_batch(self, c: int, batch: torch.Tensor) -> torch.Tensor:
        self.real.append(batch.detach().clone())
        return batch


def emulated_step(net: torch.nn.Module, sent: torch.Tensor, labels: torch.Tensor, batches: list[torch.Tensor],
                  targets: list[torch.Tensor], distance: str) -> torch.Tensor:
    """``dL/dS`` of one matching step with ``batches[c]`` (targets ``targets[c]``) as class c's real batch.

    Differentiable in the batches and targets: the server optimises them through it.
    """
    params = [p for p in net.parameters() if p.requires_grad]
    syn = sent.detach().clone().requires_grad_(True)
    loss = torch.zeros(())
    for c, (batch, target) in enumerate(zip(batches, targets, strict=True)):
        fake = syn[labels == c]
        g_real = torch.autograd.grad(F.cross_entropy(net(batch), target), params, create_graph=True)
        g_fake = torch.autograd.grad(F.cross_entropy(net(fake), labels[labels == c]), params, create_graph=True)
        loss = loss + gradient_distance(list(g_real), list(g_fake), distance)
    (grad,) = torch.autograd.grad(loss, syn, create_graph=True)
    return grad


def standardised_mse(reconstruction: torch.Tensor, real: torch.Tensor) -> float:
    """MSE after standardising each tensor per channel (over images and pixels); ~2 for unrelated batches."""
    def standardise(x: torch.Tensor) -> torch.Tensor:
        dims = (0, 2, 3)
        return (x - x.mean(dims, keepdim=True)) / x.std(dims, keepdim=True).clamp_min(1e-8)

    return float(F.mse_loss(standardise(reconstruction.double()), standardise(real.double())))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean PSNR (dB) of image pairs in [0, 1]."""
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1 / mse)).mean())


def _settled(losses: list[float], window: int = 10) -> bool:
    """Stop when the match is exact (relative to the start), has not moved for ``window`` steps, or diverged."""
    last = losses[-1]
    if not np.isfinite(last) or last <= 1e-10 * losses[0]:
        return True
    return len(losses) > window and losses[-window - 1] - last <= 1e-6 * abs(losses[-window - 1])


def _pair(reconstruction: torch.Tensor, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reorder the reconstruction within each class to its closest real images (minimum total MSE)."""
    out = reconstruction.clone()
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        cost = torch.cdist(reconstruction[idx].flatten(1).double(), real[idx].flatten(1).double()) ** 2
        rows, cols = linear_sum_assignment(cost.numpy())
        out[idx[cols]] = reconstruction[idx[rows]]
    return out


def leakage_attack(observed: WorkerRound, spec: DatasetSpec, settings: LeakageSettings = LeakageSettings(),
                   *, progress: bool = True) -> LeakageResult:
    """Reconstruct the worker's real batches from ``S^g`` and its returned set."""
    gen = make_generator(settings.seed if settings.seed is not None else 0, "leakage")
    net = observed.net if settings.know_init else create_model(observed.model, spec.shape, spec.num_classes,
                                                                 generator=gen)  # its own guess of the weights
    for p in net.parameters():
        p.requires_grad_(True)
    target = (observed.sent - observed.returned) / observed.lr_img  # the first SGD step: lr_img * gradient
    sizes = [len(b) for b in observed.real]
    classes = spec.num_classes
    dummy = torch.randn((sum(sizes), *spec.shape), generator=gen).requires_grad_(True)
    logits = torch.randn((sum(sizes), classes), generator=gen).requires_grad_(settings.learn_labels)
    true = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    opt = torch.optim.LBFGS([dummy, logits] if settings.learn_labels else [dummy], lr=settings.lr,
                            max_iter=settings.inner, history_size=settings.history, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        batches = list(dummy.split(sizes))
        targets = (list(F.softmax(logits, 1).split(sizes)) if settings.learn_labels
                   else [torch.full((n,), c) for c, n in enumerate(sizes)])
        loss = (emulated_step(net, observed.sent, observed.labels, batches, targets, observed.distance)
                - target).pow(2).sum()
        loss.backward()
        return loss

    losses: list[float] = []
    for _ in tqdm(range(settings.iterations), desc="leakage", disable=not progress):
        losses.append(float(opt.step(closure).detach()))
        if _settled(losses):
            break
    real = torch.cat(observed.real)
    recon = _pair(dummy.detach(), real, true)
    pixels_r, pixels_x = spec.denormalize(recon).clamp(0, 1), spec.denormalize(real).clamp(0, 1)
    ssim = [structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), data_range=1.0,
                                  channel_axis=2, win_size=7) for a, b in zip(pixels_r, pixels_x, strict=True)]
    label_acc = float((logits.detach().argmax(1) == true).float().mean()) if settings.learn_labels else None
    return LeakageResult(real, recon, true, standardised_mse(recon, real), psnr(pixels_r, pixels_x),
                         float(np.mean(ssim)), label_acc, losses)

