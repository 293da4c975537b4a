"""DM specifics; the shared checks (finite loss, determinism, gradcheck, resume) are in test_conformance."""

import pytest
import torch

from securedd.config import RunConfig, apply_overrides
from securedd.distill import run_method
from securedd.distill.distribution_matching import DMMethod, _channels_last, dm_loss
from securedd.models import create_model


def _cfg(*extra):
    return apply_overrides(RunConfig(), ["method.name=dm", "method.ipc=2", "method.iterations=2",
                                         "model=convnet_tiny", "method.batch_real=16", *extra])


def test_defaults_follow_the_reference():
    params = DMMethod.parse_params({})
    assert (params.init, params.dsa, params.batch_real, params.momentum) == ("real", True, 256, 0.5)
    assert DMMethod.default_iterations == 20_000


def test_loss_is_zero_for_identical_sets_and_matches_hand_computation():
    net = create_model("convnet_tiny", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0)).double()
    real = [torch.randn(4, 1, 8, 8, dtype=torch.float64) for _ in range(2)]
    assert float(dm_loss(net.embed, real, real).detach()) == 0.0
    syn = [torch.randn(1, 1, 8, 8, dtype=torch.float64) for _ in range(2)]
    hand = sum(((net.embed(r).mean(0) - net.embed(s).mean(0)) ** 2).sum() for r, s in zip(real, syn, strict=True))
    assert torch.allclose(dm_loss(net.embed, real, syn), hand)
    for chunk in (1, 3, 4, 10):  # pieces of the classes give the same loss
        assert torch.allclose(dm_loss(net.embed, real, syn, chunk=chunk), hand)


def test_unknown_init_is_refused(digits_train):
    import pytest

    from securedd.errors import ConfigError

    with pytest.raises(ConfigError, match="method.init must be one of real, noise"):
        run_method(_cfg("method.init=zeros"), digits_train, progress=False)


def test_compiled_dm_matches_eager(digits_train):
    base = ['method.name="dm"', "method.ipc=1", "method.iterations=2", "method.batch_real=16", 'model="convnet_tiny"']
    eager = run_method(apply_overrides(RunConfig(), base), digits_train, progress=False)
    compiled = run_method(apply_overrides(RunConfig(), [*base, "method.compile=true"]), digits_train, progress=False)
    assert torch.allclose(eager.synthetic.images, compiled.synthetic.images, atol=1e-4)
    assert eager.history == pytest.approx(compiled.history, rel=1e-4)


def test_real_pieces_enter_the_compiled_embedding_in_one_layout():
    for x in (torch.randn(4, 1, 8, 8), torch.randn(4, 3, 8, 8), torch.randn(4, 8, 8, 3).permute(0, 3, 1, 2)):
        y = _channels_last(x)
        assert torch.equal(x, y) and y.stride() == (x[0].numel(), 1, 8 * x.shape[1], x.shape[1])


def test_bf16_dm_is_deterministic_and_tracks_fp32(digits_train):
    base = ['method.name="dm"', "method.ipc=1", "method.iterations=3", "method.batch_real=16", 'model="convnet_tiny"']
    fp32 = run_method(apply_overrides(RunConfig(), base), digits_train, progress=False)
    bf16 = [run_method(apply_overrides(RunConfig(), [*base, 'method.precision="bf16"']), digits_train, progress=False)
            for _ in range(2)]
    assert torch.equal(bf16[0].synthetic.images, bf16[1].synthetic.images)
    assert bf16[0].synthetic.images.dtype == torch.float32
    # the same draws and updates in another precision: losses agree to bfloat16's ~3 digits
    assert bf16[0].history == pytest.approx(fp32.history, rel=0.05)
    assert bf16[0].history != fp32.history


def test_unknown_precision_is_refused(digits_train):
    from securedd.errors import ConfigError

    with pytest.raises(ConfigError, match="method.precision must be one of fp32, bf16; got 'fp16'"):
        run_method(_cfg('method.precision="fp16"'), digits_train, progress=False)
