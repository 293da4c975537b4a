"""Weight initialisation schemes for networks that must be re-drawn the same way later (DD).

``default`` keeps PyTorch's per-layer initialisation (drawn by
:func:`~securedd.models.create_model` from its generator); ``xavier`` (Glorot & Bengio,
the DD paper's random initialisation) and ``kaiming`` redraw every conv and linear weight
from a normal distribution and zero the biases. Norm layers keep their defaults.

Example:
    >>> import torch
    >>> from securedd.models import create_model
    >>> net = create_model("lenet", (1, 28, 28), 10, generator=torch.Generator().manual_seed(0))
    >>> net = reinitialise(net, "xavier", torch.Generator().manual_seed(1))
    >>> float(net.classifier.bias.abs().sum())
    0.0
"""

from __future__ import annotations

import torch
from torch import nn

from securedd.errors import ConfigError, did_you_mean

__all__ = ["INIT_SCHEMES", "reinitialise", "seeded_network"]

INIT_SCHEMES = ("default", "xavier", "kaiming")


@torch.no_grad()
def reinitialise(model: nn.Module, scheme: str, generator: torch.Generator) -> nn.Module:
    """Redraw ``model``'s conv and linear weights in place with ``scheme`` from ``generator``."""
    if scheme not in INIT_SCHEMES:
        raise ConfigError(f"unknown initialisation '{scheme}'.{did_you_mean(scheme, INIT_SCHEMES)} "
                          f"Valid: {', '.join(INIT_SCHEMES)}")
    if scheme == "default":
        return model
    for m in model.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear):
            if scheme == "xavier":
                nn.init.xavier_normal_(m.weight, generator=generator)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)
            if m.bias is not None:
                m.bias.zero_()
    return model


def seeded_network(name: str, shape: tuple[int, int, int], num_classes: int, seed: int, scheme: str = "default",
                   device: str | torch.device = "cpu") -> nn.Module:
    """Network ``name`` initialised from ``seed`` with ``scheme``: the same seed, the same weights.

    DD's fixed initialisation and SecDD's key: the network both sides of a transmission
    rebuild from (architecture, seed).
    """
    from securedd.models.registry import create_model
    from securedd.rng import make_generator

    gen = make_generator(seed, "network", name, scheme)
    return reinitialise(create_model(name, shape, num_classes, generator=gen), scheme, gen).to(device)
