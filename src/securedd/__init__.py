"""securedd: secure dataset distillation.

Condense an image dataset into a few synthetic images, store them as a verified
``.safetensors`` artifact, and evaluate them with the field's protocol.

Example:
    >>> import securedd
    >>> "herding" in securedd.list_methods() and "convnet" in securedd.list_models()
    True
"""

from securedd.api import distill, evaluate
from securedd.artifacts import Artifact, load_artifact, save_artifact
from securedd.config import EvalConfig, RunConfig, apply_overrides, load_config
from securedd.data import list_datasets, load_dataset
from securedd.distill import list_methods
from securedd.errors import SecureddError
from securedd.models import create_model, list_models
from securedd.version import __version__
from securedd.visualize import save_grid

__all__ = [
    "Artifact",
    "EvalConfig",
    "RunConfig",
    "SecureddError",
    "__version__",
    "apply_overrides",
    "create_model",
    "distill",
    "evaluate",
    "list_datasets",
    "list_methods",
    "list_models",
    "load_artifact",
    "load_config",
    "load_dataset",
    "save_artifact",
    "save_grid",
]
