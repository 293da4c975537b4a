"""Arithmetic precision of training and scoring: ``fp32`` (the protocol) or ``bf16`` mixed precision.

``bf16`` runs convolutions and matrix products in bfloat16 under :func:`torch.autocast`,
with fp32 weights, optimiser state and losses. On a CPU with bfloat16 dot-product
instructions (AVX512-BF16, AMX) one CIFAR-10 IPC 10 evaluation model trained and scored
1.7x as fast as in fp32 (116 vs 201 s on 2 cores); on a CPU without them it is slower, and
``fp32`` stays the default everywhere.
``benchmarks/eval_speed.py --precision bf16`` measures the speed and the accuracy it keeps.

Example:
    >>> import torch
    >>> with autocast("bf16", "cpu"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    >>> check_precision("fp16", "eval.precision")
    Traceback (most recent call last):
    ...
    securedd.errors.ConfigError: eval.precision must be one of fp32, bf16; got 'fp16'
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from securedd.errors import ConfigError

__all__ = ["PRECISIONS", "autocast", "check_precision"]

PRECISIONS = ("fp32", "bf16")
"""The precisions a training or scoring run accepts; ``fp32`` is the protocol's."""


def check_precision(value: Any, where: str = "precision") -> str:
    """``value`` if it names one of :data:`PRECISIONS`, else a ConfigError naming ``where``."""
    if value not in PRECISIONS:
        raise ConfigError(f"{where} must be one of {', '.join(PRECISIONS)}; got {value!r}")
    return str(value)


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager[Any]:
    """The context a forward pass runs in at ``precision`` on a ``device_type`` device
    (``"cpu"``, ``"cuda"``): nothing for ``fp32``, bfloat16 autocast for ``bf16``."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16)
