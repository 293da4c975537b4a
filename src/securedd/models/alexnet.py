"""AlexNet as used in the distillation literature's cross-architecture tables."""

from __future__ import annotations

from torch import nn

from securedd.models.layers import FeatureClassifier, first_padding, flat_features, make_norm

__all__ = ["AlexNet"]


class AlexNet(FeatureClassifier):
    """Five convs (128, 192, 256, 192, 192) with ReLU and three max-pools, one linear classifier.

    ``norm`` inserts a normalisation after each conv (``batchnorm`` for the BN variant).
    28x28 grey-scale inputs pad the first conv by 4.
    """

    def __init__(
        self, in_channels: int, num_classes: int, image_size: tuple[int, int] = (32, 32), *, norm: str = "none"
    ) -> None:
        super().__init__()
        pad = first_padding(image_size, 2, 4)
        h = image_size[0] + 2 * pad - 4
        w = image_size[1] + 2 * pad - 4
        spec = [(in_channels, 128, 5, pad, True), (128, 192, 5, 2, True), (192, 256, 3, 1, False),
                (256, 192, 3, 1, False), (192, 192, 3, 1, True)]
        layers: list[nn.Module] = []
        for c_in, c_out, k, p, pool in spec:
            layers += [nn.Conv2d(c_in, c_out, k, padding=p), make_norm(norm, c_out, (h, w)), nn.ReLU()]
            if pool and min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2, 2))
                h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self._add_classifier(flat_features(self.features, in_channels, image_size), num_classes)
