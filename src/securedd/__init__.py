"""securedd: secure dataset distillation.

Condense an image dataset into a few synthetic images, store them as a verified
``.safetensors`` artifact, and evaluate them with the field's protocol.

Example:
    >>> import securedd
    >>> "herding" in securedd.list_methods() and "convnet" in securedd.list_models()
    True
"""

__version__ = "0.1.0"

from securedd.api import distill, evaluate  # noqa: E402
from securedd.artifacts import Artifact, load_artifact, save_artifact  # noqa: E402
from securedd.config import EvalConfig, RunConfig, apply_overrides, load_config  # noqa: E402
from securedd.data import list_datasets, load_dataset  # noqa: E402
from securedd.distill import list_methods  # noqa: E402
from securedd.errors import SecureddError  # noqa: E402
from securedd.models import create_model, list_models  # noqa: E402
from securedd.visualize import save_grid  # noqa: E402

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
