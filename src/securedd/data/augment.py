"""Differentiable siamese augmentation (DSA, Zhao & Bilen 2021).

Every operation is differentiable with respect to the images and fully batched. A draw of
random parameters (:class:`AugmentDraw`) can be applied to several batches: with
``siamese=True`` one parameter set is shared by the whole batch, so the real and the
synthetic batch of a class get the very same transform, whatever their sizes.

Example:
    >>> import torch
    >>> from securedd.rng import make_generator
    >>> dsa = DSA("color_crop_cutout_flip_scale_rotate")
    >>> gen = make_generator(0, "dsa")
    >>> real, syn = torch.randn(256, 3, 32, 32), torch.randn(10, 3, 32, 32)
    >>> draw = dsa.draw(1, real.shape[-2:], gen, siamese=True)
    >>> dsa.apply(real, draw).shape, dsa.apply(syn, draw).shape
    (torch.Size([256, 3, 32, 32]), torch.Size([10, 3, 32, 32]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from securedd.errors import ConfigError, did_you_mean
from securedd.profiling import phase

__all__ = ["DSA", "AugmentDraw", "DSAParams", "OPERATIONS"]

OPERATIONS = ("color", "crop", "cutout", "flip", "scale", "rotate", "noise")


@dataclass(frozen=True)
class DSAParams:
    """Strength of each operation (REFERENCE section 2)."""

    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    noise_std: float = 0.001


@dataclass
class AugmentDraw:
    """Sampled parameters: the chosen operations and one tensor per random quantity.

    Tensors have a leading dimension of the batch size, or 1 when siamese (broadcast).
    """

    ops: tuple[str, ...]
    values: dict[str, torch.Tensor] = field(default_factory=dict)


def _expand(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.expand(n, *t.shape[1:]) if t.shape[0] == 1 else t


class DSA:
    """Differentiable augmentation with a strategy such as ``"color_crop_cutout_flip_scale_rotate"``.

    Args:
        strategy: operations joined by ``_`` (from :data:`OPERATIONS`); ``"none"`` for none.
        params: operation strengths.
        mode: ``"S"`` draws one operation family per batch (the reference), ``"M"`` applies
            all of them in order.
    """

    def __init__(self, strategy: str, params: DSAParams | None = None, mode: str = "S") -> None:
        ops = tuple(op for op in strategy.lower().split("_") if op and op != "none")
        for op in ops:
            if op not in OPERATIONS:
                raise ConfigError(
                    f"unknown augmentation '{op}' in strategy '{strategy}'.{did_you_mean(op, OPERATIONS)} "
                    f"Valid operations: {', '.join(OPERATIONS)}."
                )
        if mode not in ("S", "M"):
            raise ConfigError(f"DSA mode must be 'S' (one op per batch) or 'M' (all ops); got '{mode}'")
        self.strategy = strategy
        self.ops = ops
        self.params = params or DSAParams()
        self.mode = mode

    def draw(
        self, n: int, size: tuple[int, int] | torch.Size, generator: torch.Generator, *, siamese: bool = False
    ) -> AugmentDraw:
        """Sample parameters for a batch of ``n`` images of spatial ``size`` (H, W)."""
        if not self.ops:
            return AugmentDraw(())
        if self.mode == "S":
            ops: tuple[str, ...] = (self.ops[int(torch.randint(len(self.ops), (1,), generator=generator))],)
        else:
            ops = self.ops
        m = 1 if siamese else n
        h, w = int(size[0]), int(size[1])
        p = self.params
        dev = generator.device

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(m, *shape, generator=generator, device=dev)

        values: dict[str, torch.Tensor] = {}
        for op in ops:
            if op == "scale":
                values["scale"] = rand(2) * (p.ratio_scale - 1.0 / p.ratio_scale) + 1.0 / p.ratio_scale
            elif op == "rotate":
                values["rotate"] = (rand() - 0.5) * 2 * p.ratio_rotate / 180 * math.pi
            elif op == "flip":
                values["flip"] = rand() < p.prob_flip
            elif op == "color":
                values["brightness"] = rand() - 0.5
                values["saturation"] = rand()
                values["contrast"] = rand()
            elif op == "crop":
                sh, sw = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
                values["crop"] = torch.stack(
                    [
                        torch.randint(-sh, sh + 1, (m,), generator=generator, device=dev),
                        torch.randint(-sw, sw + 1, (m,), generator=generator, device=dev),
                    ],
                    dim=1,
                )
            elif op == "cutout":
                ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
                values["cutout"] = torch.stack(
                    [
                        torch.randint(0, h + (1 - ch % 2), (m,), generator=generator, device=dev),
                        torch.randint(0, w + (1 - cw % 2), (m,), generator=generator, device=dev),
                    ],
                    dim=1,
                )
            elif op == "noise":
                values["noise_seed"] = torch.randint(0, 2**62, (1,), generator=generator, device=dev)
        return AugmentDraw(ops, values)

    def apply(self, x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
        """Apply a draw to ``x`` (N, C, H, W); differentiable with respect to ``x``."""
        with phase("augmentation"):
            for op in draw.ops:
                x = getattr(self, f"_{op}")(x, draw.values)
        return x

    def siamese(
        self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply one shared draw to two batches (e.g. the real and synthetic images of a class)."""
        draw = self.draw(1, a.shape[-2:], generator, siamese=True)
        return self.apply(a, draw), self.apply(b, draw)

    def __call__(self, x: torch.Tensor, generator: torch.Generator, *, siamese: bool = False) -> torch.Tensor:
        """Draw fresh parameters and apply them."""
        return self.apply(x, self.draw(x.shape[0], x.shape[-2:], generator, siamese=siamese))

    # --- the operations; each takes (N, C, H, W) and returns the same shape -----------------

    def _affine(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, align_corners=True)

    def _scale(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        s = _expand(v["scale"], x.shape[0]).to(x.device)  # (N, 2)
        zero = torch.zeros_like(s[:, 0])
        theta = torch.stack([torch.stack([s[:, 0], zero, zero], 1), torch.stack([zero, s[:, 1], zero], 1)], 1)
        return self._affine(x, theta)

    def _rotate(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        a = _expand(v["rotate"], x.shape[0]).to(x.device)  # (N,) angles in radians
        zero = torch.zeros_like(a)
        theta = torch.stack(
            [torch.stack([a.cos(), -a.sin(), zero], 1), torch.stack([a.sin(), a.cos(), zero], 1)], 1
        )
        return self._affine(x, theta)

    def _flip(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = _expand(v["flip"], x.shape[0]).to(x.device).view(-1, 1, 1, 1)
        return torch.where(mask, x.flip(3), x)

    def _color(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        n, p = x.shape[0], self.params
        b = _expand(v["brightness"], n).to(x).view(-1, 1, 1, 1)
        s = _expand(v["saturation"], n).to(x).view(-1, 1, 1, 1)
        c = _expand(v["contrast"], n).to(x).view(-1, 1, 1, 1)
        x = x + b * p.brightness
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (s * p.saturation) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (c + p.contrast) + mean

    def _crop(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        n, _, h, w = x.shape
        shift = _expand(v["crop"], n).to(x.device)  # (N, 2) integer translation, zero fill
        rows = torch.arange(h, device=x.device).view(1, h) + shift[:, :1]  # (N, H)
        cols = torch.arange(w, device=x.device).view(1, w) + shift[:, 1:]  # (N, W)
        padded = F.pad(x, (1, 1, 1, 1))
        rows = (rows + 1).clamp(0, h + 1)
        cols = (cols + 1).clamp(0, w + 1)
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        out = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]  # (N, H, W, C)
        return out.permute(0, 3, 1, 2)

    def _cutout(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        n, _, h, w = x.shape
        ch, cw = int(h * self.params.ratio_cutout + 0.5), int(w * self.params.ratio_cutout + 0.5)
        centre = _expand(v["cutout"], n).to(x.device)  # (N, 2)
        top, left = centre[:, :1] - ch // 2, centre[:, 1:] - cw // 2
        r = torch.arange(h, device=x.device).view(1, h)
        c = torch.arange(w, device=x.device).view(1, w)
        in_rows = (r >= top) & (r < top + ch)  # (N, H)
        in_cols = (c >= left) & (c < left + cw)  # (N, W)
        mask = ~(in_rows.unsqueeze(2) & in_cols.unsqueeze(1))  # (N, H, W)
        return x * mask.unsqueeze(1).to(x.dtype)

    def _noise(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        gen = torch.Generator(device=x.device)
        gen.manual_seed(int(v["noise_seed"]))
        return x + self.params.noise_std * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
