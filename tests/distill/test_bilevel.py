"""The unrolled-GD machinery of DD/SLDD/SecDD: exact gradients, flat memory, the linear case."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from securedd.distill.bilevel import outer_cross_entropy, step_loss, step_plan, unrolled_loss
from securedd.distill.unroll import SavedTensorMeter
from securedd.errors import ConfigError
from securedd.models import create_model
from securedd.models.functional import call_flat, flat_params


def _tiny(dtype: torch.dtype = torch.float64, steps: int = 2, soft: bool = False):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(0)
    net = create_model("convnet_tiny", (1, 8, 8), 3, generator=gen).to(dtype)
    images = torch.randn(3 * steps, 1, 8, 8, generator=gen, dtype=dtype, requires_grad=True)
    if soft:
        targets = torch.randn(3 * steps, 3, generator=gen, dtype=dtype, requires_grad=True)
    else:
        targets = torch.arange(3).repeat_interleave(steps)
    plan = step_plan(3, steps, steps, epochs=2)
    lrs = torch.full((len(plan),), 0.05, dtype=dtype, requires_grad=True)
    real_x = torch.randn(12, 1, 8, 8, generator=gen, dtype=dtype)
    real_y = torch.randint(0, 3, (12,), generator=gen)

    def outer(theta: torch.Tensor) -> torch.Tensor:
        return outer_cross_entropy(net, theta, real_x, real_y)

    return net, flat_params(net), images, targets, lrs, plan, outer


def test_step_plan_takes_blocks_of_every_class_and_ties_epochs():
    plan = step_plan(num_classes=2, ipc=4, steps=2, epochs=2)
    assert [p.tolist() for p in plan] == [[0, 1, 4, 5], [2, 3, 6, 7], [0, 1, 4, 5], [2, 3, 6, 7]]
    with pytest.raises(ConfigError, match="multiple of the number of GD steps"):
        step_plan(2, 3, 2)


def test_soft_targets_are_label_logits():
    out, logits = torch.randn(4, 3), torch.randn(4, 3)
    expected = nn.functional.cross_entropy(out, logits.softmax(1))
    assert torch.allclose(step_loss(out, logits), expected)
    assert torch.allclose(step_loss(out, torch.tensor([0, 1, 2, 0])),
                          nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0])))


@pytest.mark.parametrize("soft", [False, True])
def test_recompute_gives_the_plain_unroll_value_and_gradients(soft):
    net, start, images, targets, lrs, plan, outer = _tiny(soft=soft)
    wrt = (images, lrs, targets) if soft else (images, lrs)
    results = []
    for memory in ("plain", "recompute"):
        loss = unrolled_loss(net, start, images, targets, lrs, plan, outer, memory=memory)
        results.append((loss.detach(), torch.autograd.grad(loss, wrt)))
    (a, ga), (b, gb) = results
    assert torch.allclose(a, b, rtol=1e-12)
    for x, y in zip(ga, gb, strict=True):
        assert (x - y).norm() / y.norm() < 1e-9


def test_gradcheck_of_the_recomputed_loss_float64():
    net, start, images, targets, lrs, plan, outer = _tiny(steps=1, soft=True)

    def f(x: torch.Tensor, lr: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return unrolled_loss(net, start, x, y, lr, plan, outer, memory="recompute")

    assert torch.autograd.gradcheck(f, (images, lrs, targets), eps=1e-6, atol=1e-6, rtol=1e-4,
                                    fast_mode=True)


def test_recompute_memory_stays_flat_while_the_plain_unroll_grows():
    peaks: dict[tuple[str, int], int] = {}
    for steps in (1, 4):
        net, start, images, targets, lrs, plan, outer = _tiny(torch.float32, steps=steps)
        for memory in ("plain", "recompute"):
            with SavedTensorMeter() as meter:
                unrolled_loss(net, start, images, targets, lrs, plan, outer, memory=memory).backward()
            peaks[memory, steps] = meter.peak
    # every step takes 3 images: the plain graph grows with the steps, the replayed one does not
    assert peaks["plain", 4] > 2.5 * peaks["plain", 1]
    assert peaks["recompute", 4] <= 1.1 * peaks["recompute", 1]


def test_unrolled_lrs_must_match_the_plan():
    net, start, images, targets, lrs, plan, outer = _tiny()
    with pytest.raises(ConfigError, match="learning rates"):
        unrolled_loss(net, start, images, targets, lrs[:-1], plan, outer)
    with pytest.raises(ConfigError, match="memory"):
        unrolled_loss(net, start, images, targets, lrs, plan, outer, memory="lots")


# --- the linear case (DD paper, section 3.3) ---------------------------------------------

D = 6


def _regression(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(400, D, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 1.5, D, dtype=torch.float64)
    y = x @ torch.randn(D, generator=gen, dtype=torch.float64) + 0.3 * torch.randn(400, generator=gen,
                                                                                    dtype=torch.float64)
    theta_star = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1)
    return x, y, theta_star


def _mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out.squeeze(-1) - target) ** 2).mean()


def _distil_linear(m: int, iterations: int = 700) -> tuple[float, float]:
    """Distil ``m`` points for one GD step from random inits; (mean excess loss, bound) on fresh inits."""
    x, y, theta_star = _regression()
    net = nn.Linear(D, 1, bias=False).double()
    gen = torch.Generator().manual_seed(1)
    xs = torch.randn(m, D, generator=gen, dtype=torch.float64, requires_grad=True)
    ys = torch.randn(m, generator=gen, dtype=torch.float64, requires_grad=True)
    raw = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([xs, ys, raw], lr=0.03)
    plan = [torch.arange(m)]

    def outer(theta: torch.Tensor) -> torch.Tensor:
        return _mse(call_flat(net, theta, x), y)

    for _ in range(iterations):
        starts = torch.randn(4, D, generator=gen, dtype=torch.float64)
        loss = sum(unrolled_loss(net, s, xs, ys, nn.functional.softplus(raw), plan, outer, loss_fn=_mse,
                                 memory="recompute") for s in starts)
        opt.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        opt.step()
    optimum = float(outer(theta_star))
    excess = []
    for s in torch.randn(200, D, generator=gen, dtype=torch.float64):
        value = unrolled_loss(net, s, xs.detach(), ys.detach(), nn.functional.softplus(raw).detach(), plan, outer,
                              loss_fn=_mse)
        excess.append(float(value.detach()) - optimum)
    # with m < D, the part of θ_0 outside the span of the m points is never moved:
    # E[excess] >= λ_min(Σ) (D − m) / 2 for θ_0 ~ N(0, I) (the 1/2 of _mse).
    sigma = x.T @ x / len(x)
    bound = float(torch.linalg.eigvalsh(sigma)[0]) * max(D - m, 0) / 2
    return sum(excess) / len(excess), bound


def test_linear_case_m_at_least_d_reaches_the_optimum_from_any_init():
    x, y, theta_star = _regression()
    typical = float(_mse(x @ torch.randn(D, dtype=torch.float64), y) - _mse(x @ theta_star, y))
    excess, _ = _distil_linear(D)
    assert excess < 1e-3 * typical


def test_linear_case_fewer_points_than_dimensions_cannot():
    excess, bound = _distil_linear(D - 2)
    assert bound > 0.1 and excess >= 0.95 * bound
