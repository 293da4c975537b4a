"""The evaluation protocol, fairness metrics and reports."""

from securedd.evaluate.fairness import class_variance, normalized_per_class
from securedd.evaluate.train_eval import (
    ArchReport,
    EvalReport,
    ModelScore,
    TrainSettings,
    evaluate_set,
    score_model,
    train_model,
)

__all__ = [
    "ArchReport",
    "EvalReport",
    "ModelScore",
    "TrainSettings",
    "class_variance",
    "evaluate_set",
    "normalized_per_class",
    "score_model",
    "train_model",
]
