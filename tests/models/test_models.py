import pytest
import torch

from securedd.errors import ConfigError, MismatchError, UnknownNameError
from securedd.models import create_model, list_models, num_parameters
from securedd.rng import make_generator

REQUIRED = {"convnet", "convnet_bn", "lenet", "alexnet", "alexnet_bn", "vgg11", "vgg11_bn", "resnet18",
            "resnet18_bn", "mlp"}


def test_zoo_has_every_required_model():
    assert REQUIRED <= set(list_models())


@pytest.mark.parametrize("shape, classes, count", [((1, 28, 28), 10, 317_706), ((3, 32, 32), 10, 320_010),
                                                   ((3, 32, 32), 100, 504_420)])
def test_convnet_parameter_counts(shape, classes, count):
    assert num_parameters(create_model("convnet", shape, classes)) == count


def test_convnet_embed_is_2048d_for_mnist_and_cifar():
    for shape in [(1, 28, 28), (3, 32, 32)]:
        assert create_model("convnet", shape, 10).embed(torch.zeros(2, *shape)).shape == (2, 2048)


@pytest.mark.parametrize("name", sorted(REQUIRED | {"vgg16", "convnet_tiny", "convnet_attack"}))
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (4, 12, 20)])
def test_every_model_takes_any_channels_and_sizes(name, shape):
    model = create_model(name, shape, 7)
    x = torch.randn(2, *shape)
    assert model(x).shape == (2, 7) and model.embed(x).shape[0] == 2


def test_generator_makes_initialisation_reproducible():
    a = create_model("convnet", (1, 28, 28), 10, generator=make_generator(0, "m"))
    b = create_model("convnet", (1, 28, 28), 10, generator=make_generator(0, "m"))
    c = create_model("convnet", (1, 28, 28), 10, generator=make_generator(1, "m"))
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_convnet_options_and_errors():
    m = create_model("convnet", (3, 32, 32), 10, width=32, depth=4, act="sigmoid", norm="batchnorm", pool="maxpool")
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match="pools"):
        create_model("convnet", (1, 8, 8), 10, depth=4)
    with pytest.raises(ConfigError, match="Did you mean 'width'"):
        create_model("convnet", (1, 8, 8), 10, widht=3)
    with pytest.raises(ConfigError, match="Did you mean 'relu'"):
        create_model("convnet", (1, 8, 8), 10, act="rleu")
    with pytest.raises(MismatchError, match="at least 8x8"):
        create_model("convnet", (1, 7, 7), 10)
    with pytest.raises(UnknownNameError, match="Did you mean 'resnet18'"):
        create_model("resnet81", (1, 8, 8), 10)


def test_dummy_shape_probe_does_not_touch_batchnorm_statistics():
    m = create_model("vgg11_bn", (1, 8, 8), 10)
    bn = next(mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d))
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean)) and int(bn.num_batches_tracked) == 0
