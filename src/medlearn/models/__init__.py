"""Model zoo: every architecture registers itself on import; build one with ``create_model``."""

from medlearn.models import deep, drinet, multires, shallow, synergic, unet  # noqa: F401  (imported to register models)
from medlearn.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
