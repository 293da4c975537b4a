"""Compiled training and scoring: when ``torch.compile`` pays for itself, and the compiled model.

Compiling a ConvNet-3 fuses its normalisation, ReLU and pooling around the convolutions;
on a CPU a CIFAR-10 IPC 10 epoch then runs 1.49x as fast as eagerly
(``benchmarks/compile_gain.py``). The one-off cost is a compilation per process and batch
shape (later models of the same architecture and shapes reuse it), so it is worth paying
only for enough work: :func:`worth_compiling` is the rule the ``auto`` setting applies.

Compiled and eager floats differ in the last bits; each is deterministic for a seed on a
given machine, and the setting is part of the recorded protocol.

Example:
    >>> worth_compiling(images=100, pixels=3 * 32 * 32, epochs=1000, runs=3)  # CIFAR-10 IPC 10
    True
    >>> worth_compiling(images=50, pixels=8 * 8, epochs=300, runs=3)  # a small digits set
    False
"""

from __future__ import annotations

import logging

import torch

__all__ = ["COMPILE_WORK", "CompiledForward", "resolve_compile", "worth_compiling"]

log = logging.getLogger(__name__)

COMPILE_WORK = 2e8
"""Pixel-passes (images x pixels x epochs x models) from which compiling pays back its
one-off cost: ``benchmarks/compile_gain.py`` measured 2.9e-7 s saved per pixel-pass on a
CPU (272 vs 183 ms an epoch of 100 CIFAR-10 images), so 2e8 of them save about a minute,
well above a compilation's seconds."""


def worth_compiling(images: int, pixels: int, epochs: int, runs: int = 1) -> bool:
    """Whether training ``runs`` models for ``epochs`` epochs on ``images`` images of
    ``pixels`` values each is enough work for compilation to pay back (:data:`COMPILE_WORK`)."""
    return images * pixels * epochs * runs >= COMPILE_WORK


def resolve_compile(setting: bool | None, images: torch.Tensor, epochs: int, runs: int = 1) -> bool:
    """``setting`` itself, or for ``None`` (auto) :func:`worth_compiling` for this set."""
    if setting is not None:
        return setting
    return worth_compiling(len(images), images[0].numel() if len(images) else 0, epochs, runs)


class CompiledForward:
    """A model's forward pass through ``torch.compile`` (static shapes: each batch shape compiles
    once, and fresh models of the same architecture reuse the compilation), sharing the model's
    parameters.

    Where compilation fails (no C++ compiler on the machine, an operation the compiler does
    not support) it says so once in the log and runs the model eagerly from then on: the
    same computation, only slower.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        # torch's extension loader announces at warning level that a CPU-only machine has no CUDA
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        self.model = model
        self.compiled = torch.compile(model, dynamic=False)
        self.failed = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.failed:
            try:
                out: torch.Tensor = self.compiled(x)
                return out
            except Exception as exc:  # noqa: BLE001 -- any compiler failure: the eager model computes the same
                self.failed = True
                log.warning("torch.compile failed for %s (%s: %s); training and scoring it eagerly instead",
                            type(self.model).__name__, type(exc).__name__, str(exc).splitlines()[0][:200])
        out = self.model(x)
        return out

