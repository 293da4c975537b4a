"""VGG networks (VGG11 by default) with a per-conv normalisation of choice."""

from __future__ import annotations

from torch import nn

from securedd.models.layers import FeatureClassifier, first_padding, flat_features, make_norm

__all__ = ["VGG", "VGG_CONFIGS"]

VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(FeatureClassifier):
    """VGG: conv3x3 -> norm -> ReLU blocks with max-pools, one linear classifier.

    Pools that would shrink a map below 1x1 are skipped, so inputs down to 8x8 work.
    ``norm="instancenorm"`` is the field's default, ``"batchnorm"`` the BN variant.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int] = (32, 32),
        *,
        config: str = "vgg11",
        norm: str = "instancenorm",
    ) -> None:
        super().__init__()
        pad = first_padding(image_size, 1, 3)
        h, w = image_size[0] + 2 * pad - 2, image_size[1] + 2 * pad - 2
        layers: list[nn.Module] = []
        channels, first = in_channels, True
        for item in VGG_CONFIGS[config]:
            if item == "M":
                if min(h, w) >= 2:
                    layers.append(nn.MaxPool2d(2, 2))
                    h, w = h // 2, w // 2
                continue
            layers += [
                nn.Conv2d(channels, int(item), 3, padding=pad if first else 1),
                make_norm(norm, int(item), (h, w)),
                nn.ReLU(),
            ]
            channels, first = int(item), False
        self.features = nn.Sequential(*layers)
        self._add_classifier(flat_features(self.features, in_channels, image_size), num_classes)
