"""DC/DSA specifics; the shared checks (finite loss, determinism, gradcheck, resume) are in test_conformance."""

import pytest
import torch
import torch.nn.functional as F

from securedd.config import RunConfig, apply_overrides
from securedd.distill import run_method
from securedd.distill.gradient_matching import _CompiledGrad, _eager_grad, gradient_distance, loop_schedule
from securedd.errors import ConfigError
from securedd.models import create_model


def _cfg(method, *extra):
    return apply_overrides(RunConfig(), [f"method.name={method}", "method.ipc=2", "method.iterations=2",
                                         "model=convnet_tiny", "method.batch_real=16", "method.outer_loop=2",
                                         "method.inner_loop=1", *extra])


def test_batchnorm_networks_are_supported(digits_train):
    result = run_method(_cfg("dc", "model=convnet_bn"), digits_train, progress=False)
    assert torch.isfinite(result.synthetic.images).all()


def test_layerwise_distance_on_hand_cases():
    g = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([5.0, 5.0])]
    assert float(gradient_distance(g, g)) == pytest.approx(0.0, abs=1e-5)
    opposite = [-g[0], torch.tensor([1.0, -3.0])]
    assert float(gradient_distance(g, opposite)) == pytest.approx(4.0, abs=1e-5)  # two rows, 1 - (-1) each; bias ignored
    orthogonal = [torch.tensor([[0.0, 1.0], [3.0, 0.0]]), g[1]]
    assert float(gradient_distance(g, orthogonal)) == pytest.approx(2.0, abs=1e-5)
    assert float(gradient_distance(g, opposite, "mse")) == pytest.approx(4 + 16 + 16 + 64)
    with pytest.raises(ConfigError):
        gradient_distance(g, g, "l3")


def test_gradcheck_float64_of_the_distance():
    real = [torch.randn(4, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    syn = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: gradient_distance(real, [s, real[1]]), (syn,))


def test_loop_schedule_table_and_rule():
    assert loop_schedule(1) == (1, 1) and loop_schedule(10) == (10, 50) and loop_schedule(50) == (50, 10)
    assert loop_schedule(15) == (10, 50) and loop_schedule(5) == (1, 1) and loop_schedule(100) == (50, 10)


def test_compiled_real_gradients_match_autograd(digits_train):
    gen = torch.Generator().manual_seed(0)
    template = create_model("convnet_tiny", digits_train.spec.shape, 10, generator=gen)
    net = create_model("convnet_tiny", digits_train.spec.shape, 10, generator=gen)  # other weights, same graph
    x, y = digits_train.images[:32], digits_train.labels[:32]
    expected = torch.autograd.grad(F.cross_entropy(net(x), y), list(net.parameters()))
    for chunk in (0, 7, 16):  # whole batch, uneven pieces (5 of 7 or 6), even pieces
        got = _CompiledGrad(template, chunk)(net, x, y)
        for e, g in zip(expected, got, strict=True):
            assert torch.allclose(e, g, atol=1e-5, rtol=1e-4)


def test_chunked_eager_gradients_and_training_match_whole_batches(digits_train):
    net = create_model("convnet_tiny", digits_train.spec.shape, 10, generator=torch.Generator().manual_seed(0))
    params = list(net.parameters())
    x, y = digits_train.images[:30], digits_train.labels[:30]
    expected = torch.autograd.grad(F.cross_entropy(net(x), y), params)
    for chunk in (0, 4, 30, 100):
        for e, g in zip(expected, _eager_grad(net, params, x, y, chunk), strict=True):
            assert torch.allclose(e, g, atol=1e-6, rtol=1e-5)
    base = ["method.name=dc", "method.ipc=2", "method.iterations=2", "model=convnet_tiny", "method.batch_real=16",
            "method.outer_loop=2", "method.inner_loop=2"]
    whole = run_method(apply_overrides(RunConfig(), [*base, "method.chunk=0"]), digits_train, progress=False)
    pieces = run_method(apply_overrides(RunConfig(), [*base, "method.chunk=3"]), digits_train, progress=False)
    assert torch.allclose(whole.synthetic.images, pieces.synthetic.images, atol=1e-5)
    with pytest.raises(ConfigError, match="method.chunk must be >= 0"):
        run_method(apply_overrides(RunConfig(), [*base, "method.chunk=-1"]), digits_train, progress=False)
