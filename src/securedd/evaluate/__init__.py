"""The evaluation protocols, fairness metrics and reports."""

from securedd.evaluate.fairness import class_variance, normalized_per_class
from securedd.evaluate.protocols import EVAL_PROTOCOLS, EvalHints, EvalProtocol, ReplayHints, SGDHints
from securedd.evaluate.train_eval import ArchReport, EvalReport, evaluate_set
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
