"""Which images of a class-major synthetic set each step of a learned GD schedule uses (DD).

Example:
    >>> [idx.tolist() for idx in step_plan(num_classes=2, ipc=2, steps=2)]
    [[0, 2], [1, 3]]
"""

from __future__ import annotations

import torch

from securedd.errors import ConfigError

__all__ = ["step_plan"]


def step_plan(num_classes: int, ipc: int, steps: int, epochs: int = 1,
              device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """Which images of a class-major set each of the ``steps * epochs`` GD steps uses.

    Step ``s`` of every epoch takes images ``s*m … (s+1)*m − 1`` of every class
    (``m = ipc / steps``): with ``ipc == steps``, one image per class per step, as in DD.
    Images are tied across epochs.

    Raises:
        ConfigError: ``ipc`` is not a multiple of ``steps``, or a count is below 1.
    """
    if steps < 1 or epochs < 1 or ipc < 1:
        raise ConfigError(f"steps, epochs and ipc must be >= 1; got steps={steps}, epochs={epochs}, ipc={ipc}")
    if ipc % steps:
        raise ConfigError(f"ipc ({ipc}) must be a multiple of the number of GD steps ({steps}): every step takes "
                          "the same number of images of every class; use e.g. ipc={steps} or steps=1")
    m = ipc // steps
    classes = torch.arange(num_classes, device=device).view(-1, 1) * ipc
    plan = [(classes + s * m + torch.arange(m, device=device)).reshape(-1) for s in range(steps)]
    return plan * epochs
