"""Training networks on images: the defaults, the SGD loop, learned-schedule replay, scoring, pools.

:class:`TrainSettings` is the one table of training defaults and :func:`default_epochs`
the protocol's epochs rule; :func:`train_model` is the SGD loop that evaluation, the
audit, expert trajectories and network pools share.
"""

from securedd.training.loop import EpochHook, replay_steps, soft_label_loss, train_model
from securedd.training.scoring import ModelScore, inference_batch, score_model
from securedd.training.settings import (
    EPOCHS_WITH_DSA,
    EPOCHS_WITHOUT_DSA,
    TrainSettings,
    default_epochs,
    eval_settings,
)

__all__ = [
    "EPOCHS_WITHOUT_DSA",
    "EPOCHS_WITH_DSA",
    "EpochHook",
    "ModelScore",
    "TrainSettings",
    "default_epochs",
    "eval_settings",
    "inference_batch",
    "replay_steps",
    "score_model",
    "soft_label_loss",
    "train_model",
]
