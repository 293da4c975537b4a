"""How a fresh model is trained on a set: the one table of training defaults and the epochs rule.

The evaluation protocol (REFERENCE section 2): SGD with lr 0.01, momentum 0.9, weight
decay 5e-4, batches of 256, the learning rate divided by 10 once at half-way, for
:data:`EPOCHS_WITH_DSA` epochs with DSA or :data:`EPOCHS_WITHOUT_DSA` without.
:class:`TrainSettings` holds these defaults; :func:`eval_settings` turns an
:class:`~securedd.config.EvalConfig` (what a user asks for) into settings.

Example:
    >>> from securedd.config import EvalConfig
    >>> eval_settings(EvalConfig(dsa=False), "color_crop").epochs
    300
    >>> s = eval_settings(EvalConfig(), "color_crop")
    >>> (s.epochs, s.dsa_strategy, s.lr)
    (1000, 'color_crop', 0.01)
"""

from __future__ import annotations

from dataclasses import dataclass

from securedd.config import EvalConfig
from securedd.errors import ConfigError

__all__ = ["EPOCHS_WITHOUT_DSA", "EPOCHS_WITH_DSA", "OPTIMIZERS", "TrainSettings", "default_epochs", "eval_settings"]

OPTIMIZERS = ("sgd", "adam")

EPOCHS_WITH_DSA = 1000  # the protocol's epochs when training augments with DSA
EPOCHS_WITHOUT_DSA = 300  # ... and without augmentation
_ASKED = EvalConfig()  # the optimiser's defaults are the user-facing config's, written once there


def default_epochs(dsa: bool) -> int:
    """The protocol's training epochs: :data:`EPOCHS_WITH_DSA` with DSA, :data:`EPOCHS_WITHOUT_DSA` without."""
    return EPOCHS_WITH_DSA if dsa else EPOCHS_WITHOUT_DSA


@dataclass(frozen=True)
class TrainSettings:
    """How a fresh model is trained on a (small) set.

    ``cutmix_prob`` > 0 mixes a batch with CutMix with that probability (after DSA), as
    IDC's evaluation does; 0 (the default) leaves training exactly as without it.
    ``chunk``: a batch's gradient is summed over pieces of at most this many images (0:
    whole batches), the same gradient up to float rounding and faster on a CPU; models with
    batch norm, CutMix batches and ``bf16`` training always go through whole. ``lr_drop``: divide the
    learning rate by 10 once, after half the epochs (the protocol); ``False`` keeps it.
    ``compile``: train and score through ``torch.compile`` (:mod:`securedd.training.compiled`);
    ``None`` (auto) compiles when the work is large enough to pay back the compilation.
    ``precision``: ``fp32`` (the protocol) or ``bf16`` mixed precision (:mod:`securedd.precision`).
    ``optimizer``: ``sgd`` (the protocol: momentum and weight decay as set) or ``adam`` (the
    same weight decay; ``momentum`` unused).
    """

    epochs: int = EPOCHS_WITH_DSA
    lr: float = _ASKED.lr  # 0.01
    momentum: float = _ASKED.momentum  # 0.9
    weight_decay: float = _ASKED.weight_decay  # 5e-4
    batch_size: int = _ASKED.batch_size  # 256
    dsa_strategy: str | None = None  # None: no augmentation
    cutmix_prob: float = 0.0
    cutmix_beta: float = 1.0
    chunk: int = 16
    lr_drop: bool = True
    compile: bool | None = None
    precision: str = "fp32"
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"the optimiser must be one of {', '.join(OPTIMIZERS)}; got '{self.optimizer}'")


def eval_settings(cfg: EvalConfig, dsa_strategy: str, *, hint_dsa_strategy: str | None = None,
                  cutmix_prob: float | None = None, cutmix_beta: float | None = None) -> TrainSettings:
    """The training settings of an :class:`EvalConfig` (default epochs: :func:`default_epochs`).

    ``dsa_strategy`` is the dataset's augmentation. The keyword arguments are what a
    distilled set asks for (IDC: CutMix and its own augmentation); explicit ``cfg``
    values win over them.
    """
    epochs = cfg.epochs if cfg.epochs is not None else default_epochs(cfg.dsa)
    strategy = (cfg.dsa_strategy or hint_dsa_strategy or dsa_strategy) if cfg.dsa else None
    cutmix = cfg.cutmix if cfg.cutmix is not None else float(cutmix_prob if cutmix_prob is not None else 0.0)
    beta = float(cutmix_beta if cutmix_beta is not None else 1.0)
    return TrainSettings(epochs, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, strategy, cutmix, beta,
                         compile=cfg.compile, precision=cfg.precision)
