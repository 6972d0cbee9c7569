"""Model zoo: every architecture registers itself on import; build one with ``create_model``."""

from medlearn.models import (  # noqa: F401  (imported to register models)
    deep,
    detection,
    drinet,
    embedding,
    enhancement,
    gan,
    landmarks,
    multires,
    patch_cnn,
    registration,
    shallow,
    slice_boxes,
    synergic,
    unet,
    voxel_classifiers,
)
from medlearn.models.registry import create_model, list_models, model_defaults, register_model

__all__ = ["create_model", "list_models", "model_defaults", "register_model"]
