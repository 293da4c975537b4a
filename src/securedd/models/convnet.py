"""The field's standard backbone, ConvNet-D (REFERENCE section 1).

``depth`` blocks of conv3x3 (bias) -> norm -> act -> pool, then one linear classifier.
28x28 inputs are not resized: the first conv pads by 3, giving 32x32 feature maps.

Example:
    >>> model = ConvNet(1, 10, (28, 28))
    >>> sum(p.numel() for p in model.parameters())
    317706
"""

from __future__ import annotations

from torch import nn

from securedd.errors import ConfigError
from securedd.models.layers import FeatureClassifier, first_padding, make_act, make_norm, make_pool

__all__ = ["ConvNet"]


class ConvNet(FeatureClassifier):
    """ConvNet with configurable depth, width, activation, norm and pooling.

    Args:
        in_channels: image channels.
        num_classes: output classes.
        image_size: (H, W) of the input.
        width: channels of every conv (128).
        depth: number of conv blocks (3).
        act: ``relu`` | ``sigmoid`` | ``leakyrelu`` | ``swish`` | ``tanh`` | ``gelu``.
        norm: ``instancenorm`` | ``batchnorm`` | ``layernorm`` | ``groupnorm`` | ``none``.
        pool: ``avgpool`` | ``maxpool`` | ``none``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int] = (32, 32),
        *,
        width: int = 128,
        depth: int = 3,
        act: str = "relu",
        norm: str = "instancenorm",
        pool: str = "avgpool",
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ConfigError(f"ConvNet needs depth >= 1 and width >= 1; got depth={depth}, width={width}")
        pad = first_padding(image_size, 1, 3)
        h, w = image_size[0] + 2 * pad - 2, image_size[1] + 2 * pad - 2
        layers: list[nn.Module] = []
        channels = in_channels
        for d in range(depth):
            if d > 0:
                pad = 1
            layers += [nn.Conv2d(channels, width, 3, padding=pad), make_norm(norm, width, (h, w)), make_act(act)]
            pooling = make_pool(pool)
            if pooling is not None:
                if h < 2 or w < 2:
                    raise ConfigError(
                        f"ConvNet depth {depth} pools {image_size} below 1x1; use depth <= {d} or pool='none'"
                    )
                layers.append(pooling)
                h, w = h // 2, w // 2
            channels = width
        self.features = nn.Sequential(*layers)
        self._add_classifier(width * h * w, num_classes)  # 2048 features for MNIST and CIFAR
