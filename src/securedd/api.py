"""The high-level API: distil a dataset into an artifact, evaluate an artifact.

Example:
    >>> import tempfile
    >>> from securedd import RunConfig, apply_overrides, distill, evaluate
    >>> cfg = apply_overrides(RunConfig(), ["method.name=random", "method.ipc=2"])
    >>> art = distill(cfg, out=tempfile.mkdtemp() + "/digits.safetensors", progress=False)
    >>> art.images.shape
    torch.Size([20, 1, 8, 8])
    >>> report = evaluate(art, epochs=20, runs=1, progress=False)
    >>> 0 <= report.archs[0].mean <= 100
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from securedd.artifacts import Artifact, load_artifact, save_artifact
from securedd.config import EvalConfig, RunConfig, check_device
from securedd.data import load_dataset
from securedd.data.spec import RealData
from securedd.data.zca import ZCAWhitening
from securedd.distill import run_method
from securedd.distill.base import method_settings
from securedd.distill.multi_formation import decode_stored
from securedd.errors import MismatchError
from securedd.evaluation.protocols import EvalHints
from securedd.evaluation.train_eval import EvalReport
from securedd.secure.keys import TargetKey
from securedd.store import check_output

__all__ = ["distill", "evaluate"]


def distill(
    config: RunConfig,
    *,
    out: str | Path | None = None,
    real: RealData | None = None,
    progress: bool = True,
    resume: bool = False,
    payload: str = "float32",
) -> Artifact:
    """Distil ``config.data`` with ``config.method`` and write the artifact to ``out``.

    Args:
        config: the run (dataset, method, IPC, seed, device...).
        out: the ``.safetensors`` file to write (a checkpoint goes beside it as ``*.ckpt``).
        real: the training data, if already loaded (otherwise read from ``config.data``).
        progress: show progress bars.
        resume: continue from the checkpoint beside ``out``.
        payload: ``float16`` stores the images (and soft labels) at half the size.

    Raises:
        Interrupted: Ctrl-C stopped the run (with ``out`` set); the checkpoint beside
            ``out`` was written and ``resume=True`` continues it.
    """
    check_device(config.device)
    if real is None:
        real = load_dataset(config.data.name, "train", root=config.data.root, download=config.data.download,
                            skip_bad_images=config.data.skip_bad_images)
    checkpoint = Path(str(out) + ".ckpt") if out is not None else None
    if out is not None and checkpoint is not None:  # before any work: a run must not die at its first save
        check_output(out, what="the artifact", need_bytes=output_estimate(config, real))
        check_output(checkpoint, what="the checkpoint")
    result = run_method(config, real, progress=progress, checkpoint=checkpoint, resume=resume)
    syn = result.synthetic
    kwargs: dict[str, Any] = dict(
        spec=real.spec, method=result.method, ipc=config.method.ipc, seed=config.seed, lrs=syn.lrs,
        extras=syn.extras, config=redacted(method_settings(config), result.metadata.get("redact", ())),
        info={"iterations": result.iterations, "final_loss": result.history[-1] if result.history else None},
        decoder=result.metadata.get("decoder"), evaluation=result.metadata.get("evaluation"), payload=payload,
    )
    if out is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            art = save_artifact(Path(tmp) / "set.safetensors", syn.images, syn.labels, **kwargs)
            return Artifact(art.images, art.labels, art.metadata, art.lrs, art.extras, None)
    art = save_artifact(out, syn.images, syn.labels, **kwargs)
    if checkpoint is not None and checkpoint.exists():
        checkpoint.unlink()
    return art


def output_estimate(config: RunConfig, real: RealData) -> int:
    """A generous estimate of the bytes a distillation writes: the artifact and its checkpoint.

    The images at float32 once in the artifact and up to three times in the checkpoint (the
    set and two optimiser moments), plus 1 MiB for labels, learned rates and metadata.
    """
    pixels = real.spec.num_classes * config.method.ipc * math.prod(real.spec.shape)
    return 4 * 4 * pixels + (1 << 20)


SECRET = "(secret)"


def redacted(values: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """``values`` with every dotted path in ``paths`` (e.g. ``method.params.key``) set to "(secret)"."""
    for path in paths:
        *parents, last = path.split(".")
        node = values
        for name in parents:
            node = node[name]
        node[last] = SECRET
    return values


def evaluate(
    artifact: Artifact | str | Path,
    *,
    models: tuple[str, ...] | list[str] | None = None,
    runs: int | None = None,
    epochs: int | None = None,
    dsa: bool | None = None,
    cutmix: float | None = None,
    compile: bool | None = None,
    precision: str | None = None,
    config: EvalConfig | None = None,
    data_root: str | Path | None = None,
    test: RealData | None = None,
    device: str = "cpu",
    seed: int = 0,
    key: TargetKey | None = None,
    progress: bool = True,
    skip_bad_images: bool = False,
) -> EvalReport:
    """Train fresh models on an artifact and test them on the real test split.

    The test split is read from the artifact's dataset and normalised with its stored
    spec, then ZCA-whitened when the artifact carries a ZCA transform. The artifact's
    evaluation protocol (:mod:`securedd.evaluation.protocols`, from its ``evaluation``
    metadata) trains the models: ``sgd`` trains fresh models, with the CutMix and
    augmentation the set asks for (IDC); ``replay`` applies a learned GD schedule (DD,
    SLDD) to the network(s) it was made for, a SecDD set only with its ``key``. Soft
    labels and learned learning rates are honoured (a single learned lr, as MTT learns,
    is the SGD learning rate). A multi-formation artifact (IDC) is decoded first, as its
    ``decoder`` metadata says. Keyword arguments override the matching ``config`` fields
    (``cutmix=0`` turns CutMix off; ``compile`` forces compiled training on or off, where
    ``None`` keeps the config's choice, by default automatic; ``precision="bf16"`` trains and
    scores in bfloat16 mixed precision, :mod:`securedd.precision`).

    Raises:
        MismatchError: the artifact does not fit the test data or model.
        ArtifactError: its evaluation metadata names an unknown protocol or fields.
    """
    check_device(device)
    cfg = config or EvalConfig()
    overrides: dict[str, Any] = {"models": tuple(models) if models else None, "runs": runs, "epochs": epochs,
                                 "dsa": dsa, "cutmix": cutmix, "compile": compile,
                                 "precision": precision}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    spec = art.spec
    if test is None:
        test = load_dataset(spec.name, "test", root=data_root, spec=spec, skip_bad_images=skip_bad_images)
    elif test.spec.shape != spec.shape or test.spec.num_classes != spec.num_classes:
        raise MismatchError(
            f"the artifact is for '{spec.name}' {spec.shape} with {spec.num_classes} classes, but the test data "
            f"is '{test.spec.name}' {test.spec.shape} with {test.spec.num_classes} classes"
        )
    zca = ZCAWhitening.from_tensors(art.extras)
    if zca is not None:
        test = zca.apply(test)
    hints = EvalHints.of(art)
    images, labels = decode_stored(art.images, art.labels, art.decoder)
    report = hints.get_protocol().evaluate(art, test, cfg, hints=hints, images=images, labels=labels, models=models,
                                           seed=seed, key=key, device=device, progress=progress)
    report.set_info = art.ipc_accounting()
    return report
