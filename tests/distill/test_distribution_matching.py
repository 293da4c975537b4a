import torch

from securedd.config import RunConfig, apply_overrides
from securedd.distill import run_method
from securedd.distill.distribution_matching import dm_loss
from securedd.models import create_model


def _cfg(*extra):
    return apply_overrides(RunConfig(), ["method.name=dm", "method.ipc=2", "method.iterations=2",
                                         "model=convnet_tiny", "method.batch_real=16", *extra])


def test_two_iterations_change_the_set_with_finite_loss(digits_train):
    first = run_method(_cfg("method.iterations=0"), digits_train, progress=False).synthetic.images
    result = run_method(_cfg(), digits_train, progress=False)
    assert all(torch.isfinite(torch.tensor(result.history)))
    assert not torch.equal(first, result.synthetic.images)
    assert result.params["init"] == "real" and result.synthetic.labels.bincount().tolist() == [2] * 10


def test_same_seed_same_set(digits_train):
    a = run_method(_cfg(), digits_train, progress=False).synthetic.images
    b = run_method(_cfg(), digits_train, progress=False).synthetic.images
    assert torch.equal(a, b)


def test_loss_is_zero_for_identical_sets_and_matches_hand_computation():
    net = create_model("convnet_tiny", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0)).double()
    real = [torch.randn(4, 1, 8, 8, dtype=torch.float64) for _ in range(2)]
    assert float(dm_loss(net.embed, real, real).detach()) == 0.0
    syn = [torch.randn(1, 1, 8, 8, dtype=torch.float64) for _ in range(2)]
    hand = sum(((net.embed(r).mean(0) - net.embed(s).mean(0)) ** 2).sum() for r, s in zip(real, syn, strict=True))
    assert torch.allclose(dm_loss(net.embed, real, syn), hand)


def test_gradcheck_float64_wrt_one_image_per_class():
    net = create_model("convnet_tiny", (1, 8, 8), 3, generator=torch.Generator().manual_seed(0)).double()
    real = [torch.randn(5, 1, 8, 8, dtype=torch.float64) for _ in range(3)]
    syn = torch.randn(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: dm_loss(net.embed, real, list(s.split(1))), (syn,), atol=1e-5)


def test_unknown_init_is_refused(digits_train):
    import pytest

    from securedd.errors import ConfigError

    with pytest.raises(ConfigError, match="method.init must be one of real, noise"):
        run_method(_cfg("method.init=zeros"), digits_train, progress=False)
