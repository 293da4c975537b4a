"""Distillation methods on one shared loop; importing this registers them all."""

from securedd.distill import coreset as _coreset  # noqa: F401  (registers the methods)
from securedd.distill import dataset_distillation as _dd  # noqa: F401
from securedd.distill import distribution_matching as _dm  # noqa: F401
from securedd.distill import gradient_matching as _gm  # noqa: F401
from securedd.distill import multi_formation as _idc  # noqa: F401
from securedd.distill import trajectory_matching as _tm  # noqa: F401
from securedd.distill.base import METHODS, DistillContext, DistillResult, Method, list_methods, run_method
from securedd.distill.synthetic import SyntheticSet

__all__ = ["METHODS", "DistillContext", "DistillResult", "Method", "SyntheticSet", "list_methods", "run_method"]
