"""The evaluation protocols, fairness metrics and reports."""

from securedd.evaluation.fairness import class_variance, normalized_per_class
from securedd.evaluation.protocols import EVAL_PROTOCOLS, EvalHints, EvalProtocol, ReplayHints, SGDHints
from securedd.evaluation.train_eval import ArchReport, EvalReport, evaluate_set
from securedd.training import TrainSettings  # evaluate_set's settings

__all__ = [
    "EVAL_PROTOCOLS",
    "ArchReport",
    "EvalHints",
    "EvalProtocol",
    "EvalReport",
    "ReplayHints",
    "SGDHints",
    "TrainSettings",
    "class_variance",
    "evaluate_set",
    "normalized_per_class",
]
