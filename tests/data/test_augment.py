import pytest
import torch

from securedd.data import DSA
from securedd.data.augment import OPERATIONS
from securedd.errors import ConfigError
from securedd.rng import make_generator

FULL = "color_crop_cutout_flip_scale_rotate"


@pytest.mark.parametrize("op", ["color", "crop", "cutout", "flip", "scale", "rotate"])
def test_siamese_draw_transforms_both_batches_identically(op):
    dsa = DSA(op)
    x = torch.randn(6, 3, 16, 16)
    draw = dsa.draw(1, (16, 16), make_generator(0, op), siamese=True)
    whole = dsa.apply(x, draw)
    alone = torch.cat([dsa.apply(x[i : i + 1], draw) for i in range(6)])
    assert torch.allclose(whole, alone, atol=1e-6)  # one parameter set for the whole batch, any size


def test_non_siamese_draws_differ_per_image():
    dsa = DSA("rotate")
    x = torch.randn(1, 1, 16, 16).expand(8, 1, 16, 16)
    out = dsa(x, make_generator(0, "r"))
    assert not torch.allclose(out[0], out[1])


def test_same_generator_same_augmentation_and_shapes():
    dsa = DSA(FULL)
    x = torch.randn(5, 3, 32, 32)
    for seed in range(12):
        a = dsa(x, make_generator(seed, "d"))
        b = dsa(x, make_generator(seed, "d"))
        assert a.shape == x.shape and torch.equal(a, b)


def test_multi_mode_applies_every_operation():
    dsa = DSA("flip", mode="M")
    x = torch.randn(1, 1, 8, 8)
    draw = dsa.draw(1, (8, 8), make_generator(0, "m"))
    draw.values["flip"] = torch.tensor([True])
    assert torch.equal(dsa.apply(x, draw), x.flip(3))


def test_crop_translates_with_zero_fill_and_cutout_zeroes_a_square():
    dsa = DSA("crop_cutout", mode="M")
    x = torch.ones(1, 1, 8, 8)
    draw = dsa.draw(1, (8, 8), make_generator(0, "c"))
    draw.values["crop"] = torch.tensor([[1, 0]])
    shifted = dsa._crop(x, draw.values)
    assert shifted[0, 0, -1].sum() == 0 and shifted[0, 0, :-1].sum() == 56
    draw.values["cutout"] = torch.tensor([[4, 4]])
    cut = dsa._cutout(x, draw.values)
    assert cut.sum() == 64 - 16 and cut[0, 0, 2:6, 2:6].sum() == 0


@pytest.mark.parametrize("op", ["color", "crop", "cutout", "flip", "scale", "rotate"])
def test_gradcheck_float64(op):
    dsa = DSA(op)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    draw = dsa.draw(2, (8, 8), make_generator(1, op))
    assert torch.autograd.gradcheck(lambda t: dsa.apply(t, draw), (x,), eps=1e-6, atol=1e-4)


def test_unknown_operation_is_refused():
    with pytest.raises(ConfigError, match="Did you mean 'rotate'"):
        DSA("color_rotat")
    assert "noise" in OPERATIONS


def test_siamese_helper_shares_one_draw_across_batch_sizes():
    dsa = DSA("rotate")
    real, syn = torch.randn(7, 1, 8, 8), torch.randn(2, 1, 8, 8)
    a, b = dsa.siamese(real, syn, make_generator(0, "s"))
    draw = dsa.draw(1, (8, 8), make_generator(0, "s"), siamese=True)
    assert torch.equal(a, dsa.apply(real, draw)) and torch.equal(b, dsa.apply(syn, draw))


def test_noise_op_perturbs_reproducibly():
    dsa = DSA("noise")
    x = torch.zeros(3, 1, 8, 8)
    a, b = dsa(x, make_generator(0, "n")), dsa(x, make_generator(0, "n"))
    assert torch.equal(a, b) and 0 < float(a.abs().max()) < 0.01
