"""IDC: multi-formation with gradient matching (Kim et al., ICML 2022).

Each stored synthetic image holds ``factor x factor`` smaller images: :func:`decode` cuts
it into tiles and upsamples every tile back to full size (bilinear), so one stored image
trains like ``factor**2`` images at the same storage cost. The IPC budget counts *stored*
images; the artifact records the factor and what the set decodes to.

Each iteration draws a fresh network (trained with SGD, momentum 0.9, weight decay 5e-4)
and runs ``inner_loop`` steps of: for every class, match the gradient of the loss on a
real batch to the gradient on the class's decoded synthetic images (both under one shared
augmentation draw) and take an image step; then train the network on ``net_data`` real
images (per-image augmentation and CutMix). Only convolution weights are matched; the
distance is MSE for colour data and L1 for grey-scale digits. Images start as real images
down-sampled into the tiles and are kept within the valid pixel range.

Real data is touched in :meth:`IDCMethod.real_batch` and :meth:`IDCMethod.real_mixed_batch`
only (one place for a defence to act).

Example:
    >>> import torch
    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> images, labels = decode(x, torch.tensor([3]), factor=2)
    >>> images.shape, labels.tolist()
    (torch.Size([4, 1, 4, 4]), [3, 3, 3, 3])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from securedd.data.augment import DSA
from securedd.data.mix import CutMix
from securedd.distill.base import METHODS, DistillContext, Method
from securedd.distill.gradient_matching import gradient_distance
from securedd.distill.synthetic import SyntheticSet, class_labels
from securedd.errors import ConfigError, MismatchError
from securedd.evaluation.protocols import EvalHints, SGDHints
from securedd.registry import Registry

__all__ = [
    "DECODERS", "IDCMethod", "IDCParams", "decode", "decode_stored", "encode", "matched_parameters",
    "matching_loss",
]

IDC_DISTANCES = ("mse", "l1")
IDC_INITS = ("real", "noise")


# --- multi-formation: stored images <-> training images ------------------------------------

def _tile_size(images: torch.Tensor, factor: int) -> tuple[int, int]:
    if factor < 1:
        raise ConfigError(f"the multi-formation factor must be at least 1; got {factor}")
    return math.ceil(images.shape[-2] / factor), math.ceil(images.shape[-1] / factor)


def decode(images: torch.Tensor, labels: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode stored images into training images: ``factor**2`` per stored image.

    Each (C, H, W) image is cut into ``factor x factor`` tiles of ceil(H/factor) x
    ceil(W/factor) (row-major; sizes that do not divide are zero-padded at the bottom and
    right, zero being the dataset mean in normalised space) and every tile is upsampled
    bilinearly back to H x W. Differentiable with respect to ``images``.

    Args:
        images: (N, C, H, W) stored images.
        labels: (N,) hard or (N, K) soft labels.
        factor: tiles per side (1: the images unchanged).

    Returns:
        (N * factor**2, C, H, W) images, where row ``i * factor**2 + t`` is tile ``t`` of
        stored image ``i`` (a class-major set stays class-major), and the labels repeated
        accordingly.
    """
    th, tw = _tile_size(images, factor)
    if factor == 1:
        return images, labels
    n, c, h, w = images.shape
    padded = F.pad(images, (0, tw * factor - w, 0, th * factor - h))
    tiles = padded.reshape(n, c, factor, th, factor, tw).permute(0, 2, 4, 1, 3, 5)  # (N, f, f, C, th, tw)
    tiles = tiles.reshape(n * factor * factor, c, th, tw)
    up = F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)  # (N*f*f, C, H, W)
    return up, labels.repeat_interleave(factor * factor, dim=0)


def encode(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Pack ``factor**2`` full-size images into one stored image (IDC's initialisation).

    Each image is down-sampled (area averaging) to a tile and placed where :func:`decode`
    reads tile ``t``. ``images`` is (N * factor**2, C, H, W); returns (N, C, H, W).
    """
    th, tw = _tile_size(images, factor)
    per = factor * factor
    if images.shape[0] % per:
        raise MismatchError(f"{images.shape[0]} images cannot be packed {per} to a stored image")
    if factor == 1:
        return images
    _, c, h, w = images.shape
    small = F.interpolate(images, size=(th, tw), mode="area")  # (N*f*f, C, th, tw)
    grid = small.reshape(-1, factor, factor, c, th, tw).permute(0, 3, 1, 4, 2, 5)  # (N, C, f, th, f, tw)
    return grid.reshape(-1, c, factor * th, factor * tw)[:, :, :h, :w].contiguous()


Decoder = Callable[[torch.Tensor, torch.Tensor, Mapping[str, Any]], tuple[torch.Tensor, torch.Tensor]]
DECODERS: Registry[Decoder] = Registry("decoder")


@DECODERS.register("tiles", help="uniform multi-formation: factor x factor tiles, each upsampled (IDC)")
def _decode_tiles(images: torch.Tensor, labels: torch.Tensor, meta: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    return decode(images, labels, int(meta["factor"]))


def decode_stored(images: torch.Tensor, labels: torch.Tensor,
                  decoder: Mapping[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images of a stored set, as its artifact's ``decoder`` metadata says.

    ``decoder`` ``None`` returns the set unchanged; otherwise ``decoder["kind"]`` names a
    registered decoder (:data:`DECODERS`), so any multi-formation method decodes the same way.
    """
    if decoder is None:
        return images, labels
    return DECODERS.get(str(decoder.get("kind", "")))(images, labels, decoder)


# --- the matching loss ---------------------------------------------------------------------

def matched_parameters(net: torch.nn.Module, *, bias: bool = False, fc: bool = False) -> list[torch.nn.Parameter]:
    """The parameters IDC matches: convolution weights, plus 1-D (bias, norm) and 2-D
    (linear) ones when asked."""
    chosen = [p for p in net.parameters() if p.requires_grad and (p.dim() > 2 or (bias and p.dim() == 1)
                                                                   or (fc and p.dim() == 2))]
    if not chosen:
        raise ConfigError("the model has no convolution weights to match; set method.match_fc=true "
                          "(and method.match_bias=true) or pick a convolutional model")
    return chosen


def matching_loss(net: torch.nn.Module, params: list[torch.nn.Parameter], real: torch.Tensor, syn: torch.Tensor,
                  label: int, distance: str) -> torch.Tensor:
    """Distance between the cross-entropy gradients (w.r.t. ``params``) of a real batch
    (B, C, H, W) and synthetic images (M, C, H, W), all of class ``label``.

    Differentiable with respect to ``syn``; the real gradient is a constant.
    """
    y_real = torch.full((real.shape[0],), label, device=real.device, dtype=torch.long)
    g_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(real), y_real), params)]
    y_syn = torch.full((syn.shape[0],), label, device=syn.device, dtype=torch.long)
    g_syn = torch.autograd.grad(F.cross_entropy(net(syn), y_syn), params, create_graph=True)
    return gradient_distance(g_real, list(g_syn), distance)


# --- the method -----------------------------------------------------------------------------

@dataclass(frozen=True)
class IDCParams:
    """IDC hyper-parameters; defaults from the authors' code (``argument.py``,
    ``misc/reproduce.py``, ``test.py`` of snu-mllab/Efficient-Dataset-Condensation) for
    MNIST-, SVHN- and CIFAR-size data.

    Attributes:
        factor: tiles per side of a stored image (README: 2 for every dataset but ImageNet).
        distance: ``mse`` or ``l1`` between gradients; "" chooses as ``reproduce.py`` does:
            MSE for colour data (CIFAR, SVHN), L1 for grey-scale (MNIST, FashionMNIST).
        inner_loop: matching steps per network (``--inner_loop`` 100; with ``niter`` 2000
            this makes the 2000 iterations of ``default_iterations``).
        lr_img: image learning rate for [0, 1] pixels, as the reference gives it; 0 means
            its rule: 5e-3 (MSE) or 1e-4 (L1) times IPC / 10 (``tune_lr_img``). Images are
            held normalised, so the step taken is divided by the mean of std**2, which
            follows the same trajectory.
        momentum_img: image SGD momentum (``--mom_img`` 0.5).
        lr_net, momentum_net, weight_decay_net: SGD of the matched network (``--lr`` 0.01,
            ``--momentum`` 0.9, ``--weight-decay`` 5e-4).
        batch_real: real images per class per matching step, and the batch of the network's
            training (``--batch_real`` 64).
        batch_syn_max: at most this many decoded images of a class per matching step, drawn
            at random (``--batch_syn_max`` 128).
        net_data: real images the network trains on after each matching step (``--n_data``
            500; ``reproduce.py`` sets 2000 for CIFAR).
        init: ``real`` (real images down-sampled into the tiles; the reference's ``mix``)
            or ``noise``.
        dsa_strategy: augmentation while matching and training the network, every listed
            operation applied (``--aug_type`` color_crop_cutout; MNIST: color_crop).
            Cutout is dropped for the network's training when ``net_cutmix`` > 0.
        net_cutmix: CutMix probability while training the network (``--mixup_net cut``,
            ``mix_p`` 0.5; MNIST at factor > 1: 0).
        eval_cutmix: CutMix probability that evaluation should use (``--mixup cut``,
            ``mix_p`` 0.5; MNIST at factor > 1: 0); recorded in the artifact.
        cutmix_beta: Beta(beta, beta) of the CutMix area (``--beta`` 1.0).
        eval_dsa_strategy: evaluation augmentation recorded in the artifact; "" means the
            dataset's strategy, without cutout when ``eval_cutmix`` > 0 (as ``argument.py``).
        match_bias, match_fc: also match 1-D and linear-layer gradients (``--bias``, ``--fc``:
            false).
    """

    factor: int = 2
    distance: str = ""
    inner_loop: int = 100
    lr_img: float = 0.0
    momentum_img: float = 0.5
    lr_net: float = 0.01
    momentum_net: float = 0.9
    weight_decay_net: float = 5e-4
    batch_real: int = 64
    batch_syn_max: int = 128
    net_data: int = 500
    init: str = "real"
    dsa_strategy: str = "color_crop_cutout"
    net_cutmix: float = 0.5
    eval_cutmix: float = 0.5
    cutmix_beta: float = 1.0
    eval_dsa_strategy: str = ""
    match_bias: bool = False
    match_fc: bool = False


def _without(strategy: str, op: str) -> str:
    return "_".join(o for o in strategy.split("_") if o and o != op) or "none"


@METHODS.register("idc")
class IDCMethod(Method[IDCParams]):
    """IDC: multi-formation (factor x factor tiles per stored image) with gradient matching."""

    name = "idc"
    Params = IDCParams
    default_iterations = 2000

    def __init__(self, params: IDCParams, ctx: DistillContext) -> None:
        super().__init__(params, ctx)
        p, spec = params, ctx.spec
        _tile_size(torch.empty(1, *spec.shape), p.factor)  # validates the factor
        self.distance = p.distance or ("l1" if spec.channels == 1 else "mse")
        if self.distance not in IDC_DISTANCES:
            raise ConfigError(f"method.distance must be one of {', '.join(IDC_DISTANCES)}; got '{p.distance}'")
        if p.init not in IDC_INITS:
            raise ConfigError(f"method.init must be one of {', '.join(IDC_INITS)}; got '{p.init}'")
        for key in ("inner_loop", "batch_real", "batch_syn_max"):
            if getattr(p, key) < 1:
                raise ConfigError(f"method.{key} must be at least 1; got {getattr(p, key)}")
        self.match_dsa = DSA(p.dsa_strategy, mode="M")
        self.net_dsa = DSA(_without(p.dsa_strategy, "cutout") if p.net_cutmix > 0 else p.dsa_strategy, mode="M")
        self.net_cutmix = CutMix(p.net_cutmix, p.cutmix_beta)
        CutMix(p.eval_cutmix, p.cutmix_beta)  # validates the evaluation setting early
        std = torch.tensor(spec.std, dtype=torch.float64)
        mean = torch.tensor(spec.mean, dtype=torch.float64)
        self.lr_pixel = p.lr_img or (5e-3 if self.distance == "mse" else 1e-4) * ctx.ipc / 10
        self.lr_normalised = self.lr_pixel / float((std**2).mean())
        self.low = (-mean / std).float().view(1, -1, 1, 1).to(ctx.device)  # pixel 0, normalised
        self.high = ((1 - mean) / std).float().view(1, -1, 1, 1).to(ctx.device)  # pixel 1

    # --- real data: the only two places that read it ---------------------------------------

    def real_batch(self, c: int, n: int | None = None) -> torch.Tensor:
        """(n, C, H, W) random real images of class ``c`` (default ``batch_real``)."""
        return self.ctx.sampler.sample(c, n or self.params.batch_real)

    def real_mixed_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` real images drawn uniformly from the whole training set, with their labels."""
        real, gen = self.ctx.real, self.ctx.generator("idc/net_data")
        index = torch.randint(0, len(real), (n,), generator=gen, device=gen.device).to(real.images.device)
        return real.images[index], real.labels[index]

    # --- the synthetic set -------------------------------------------------------------------

    def init_synthetic(self) -> SyntheticSet:
        ctx, f = self.ctx, self.params.factor
        if self.params.init == "noise":
            shape = (ctx.spec.num_classes * ctx.ipc, *ctx.spec.shape)
            images = torch.randn(shape, generator=ctx.generator("init"), device=ctx.device)
        else:
            per_class = []
            for c in range(ctx.spec.num_classes):
                need = ctx.ipc * f * f
                real = self.real_batch(c, need)
                if real.shape[0] < need:  # a small class: reuse its images
                    real = real.repeat(math.ceil(need / real.shape[0]), 1, 1, 1)[:need]
                per_class.append(encode(real, f))
            images = torch.cat(per_class)
        images = torch.maximum(torch.minimum(images, self.high), self.low)
        return SyntheticSet(images.detach().clone().requires_grad_(True),
                            class_labels(ctx.spec.num_classes, ctx.ipc, ctx.device))

    def optimizer(self, syn: SyntheticSet) -> torch.optim.Optimizer:
        return torch.optim.SGD([syn.images], lr=self.lr_normalised, momentum=self.params.momentum_img)

    def eval_hints(self) -> EvalHints:
        """The ``sgd`` protocol with IDC's CutMix and augmentation (the reference's evaluation)."""
        ctx, p = self.ctx, self.params
        strategy = p.eval_dsa_strategy or (
            _without(ctx.spec.dsa_strategy, "cutout") if p.eval_cutmix > 0 else ctx.spec.dsa_strategy)
        return EvalHints("sgd", SGDHints(cutmix_prob=p.eval_cutmix, cutmix_beta=p.cutmix_beta, dsa_strategy=strategy))

    def artifact_metadata(self) -> dict[str, Any]:
        ctx, p = self.ctx, self.params
        per = p.factor * p.factor
        return {
            **super().artifact_metadata(),
            "decoder": {"kind": "tiles", "factor": p.factor, "images_per_stored": per,
                        "stored_ipc": ctx.ipc, "decoded_ipc": ctx.ipc * per,
                        "decoded_images": ctx.ipc * per * ctx.spec.num_classes},
        }

    clamp_images = True  # the loop's iterations clamp in place; loss_function's replays do not

    def loss_function(self, syn: SyntheticSet) -> Callable[[torch.Tensor], torch.Tensor]:
        """As :meth:`Method.loss_function`, without the in-place clamp (a pure function of the images)."""
        first = super().loss_function(syn)

        def unclamped(images: torch.Tensor) -> torch.Tensor:
            self.clamp_images = False
            try:
                return first(images)
            finally:
                self.clamp_images = True

        return unclamped

    # --- one iteration -----------------------------------------------------------------------

    def class_loss(self, net: torch.nn.Module, params: list[torch.nn.Parameter], syn: SyntheticSet,
                   c: int) -> torch.Tensor:
        """The matching loss of class ``c``: its decoded images against a real batch."""
        ctx, p = self.ctx, self.params
        rows = slice(c * ctx.ipc, (c + 1) * ctx.ipc)
        fake, _ = decode(syn.images[rows], syn.labels[rows], p.factor)
        gen = ctx.generator("idc/match")
        if fake.shape[0] > p.batch_syn_max:
            keep = torch.randperm(fake.shape[0], generator=gen, device=gen.device)[: p.batch_syn_max]
            fake = fake[keep.to(fake.device)]
        real, fake = self.match_dsa.siamese(self.real_batch(c), fake, gen)
        return matching_loss(net, params, real, fake, c, self.distance)

    def train_net(self, net: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        """Train ``net`` on about ``net_data`` real images (augmented, CutMix)."""
        # not training.train_model: random batches of the whole split, and the optimiser lives across iterations
        p, gen = self.params, self.ctx.generator("idc/net_train")
        net.train()
        for _ in range(math.ceil(p.net_data / p.batch_real)):
            x, y = self.real_mixed_batch(p.batch_real)
            with torch.no_grad():
                x = self.net_dsa(x, gen)
            mixed = self.net_cutmix(x, y, gen)
            loss = mixed.loss(net(mixed.images), F.cross_entropy)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        ctx, p = self.ctx, self.params
        if self.clamp_images:  # keep images in the valid pixel range, as the reference does
            with torch.no_grad():
                syn.images.copy_(torch.maximum(torch.minimum(syn.images, self.high), self.low))
        net = ctx.new_model(purpose="idc/net")
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=p.lr_net, momentum=p.momentum_net, weight_decay=p.weight_decay_net)
        params = matched_parameters(net, bias=p.match_bias, fc=p.match_fc)
        for _ in range(p.inner_loop):
            for c in range(ctx.spec.num_classes):
                yield self.class_loss(net, params, syn, c)
            if p.net_data > 0:
                self.train_net(net, opt)
