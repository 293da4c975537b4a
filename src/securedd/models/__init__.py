"""The model zoo, built by name."""

from securedd.models.registry import MODELS, create_model, list_models, num_parameters

__all__ = ["MODELS", "create_model", "list_models", "num_parameters"]
