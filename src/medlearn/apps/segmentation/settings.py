"""Everything about a segmentation run that is not generic training: data, model, sampling, inference."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field

from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models import create_model, list_models, model_defaults
from medlearn.planning.plan import SegmentationPlan
from medlearn.utils.settings import settings_from_dict

#: The default of ``segment train`` (see benchmarks/RESULTS.md, segmentation section).
DEFAULT_MODEL = "unet"

#: Training defaults for segmentation (the engine's generic defaults are task-agnostic).
SEGMENTATION_TRAINING_DEFAULTS = {
    "default_epochs": 40,  # --max-minutes without --epochs: the budget decides
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "warmup_epochs": 1.0,
    "grad_clip": 12.0,
    "early_stopping_patience": None,
    "channels_last": False,
    "precision": "auto",
}


@dataclass
class SegmenterSettings:
    """Task settings of a segmentation run, stored in ``config.yaml`` under ``segmentation``."""

    model: str = DEFAULT_MODEL
    model_kwargs: dict = field(default_factory=dict)
    modality: str | None = None
    #: Plan values to override (``--set key=value``), applied after the fingerprint chose the rest.
    plan_overrides: dict = field(default_factory=dict)
    #: Share of cases (by group) held out for validation when no validation CSV is given.
    val_fraction: float = 0.2
    batches_per_epoch: int = 50
    #: Share of patches centred on a foreground voxel (nnU-Net: one third).
    foreground_fraction: float = 0.33
    augment: bool = True
    #: Window overlap of sliding-window inference at validation (cheaper) and prediction time.
    val_overlap: float = 0.25
    overlap: float = 0.5
    tta: bool = False
    #: Localise, then segment: a box-localisation run whose predicted box (of ``crop_structure``, or around all its
    #: structures) plus ``crop_margin_mm`` is cut out of every image before segmentation (None: whole images).
    crop_run: str | None = None
    crop_structure: str | None = None
    crop_margin_mm: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.foreground_fraction <= 1.0:
            raise MedlearnError(f"foreground_fraction must be between 0 and 1, got {self.foreground_fraction}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise MedlearnError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.batches_per_epoch < 1:
            raise MedlearnError(f"batches_per_epoch must be at least 1, got {self.batches_per_epoch}")
        if self.crop_margin_mm < 0:
            raise MedlearnError(f"crop_margin_mm must be >= 0, got {self.crop_margin_mm}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SegmenterSettings:
        return settings_from_dict(cls, values, "segmentation")


#: Model arguments the plan supplies (never recorded in ``model_kwargs``).
PLAN_MODEL_ARGUMENTS = ("in_channels", "num_classes", "spatial_dims", "depth", "base_channels")


def recorded_model_kwargs(name: str, model_kwargs: dict) -> dict:
    """``model_kwargs`` completed with the factory's current defaults, as a new run writes them to its config:
    an old run then keeps its architecture when a factory default changes."""

    return {**model_defaults(name, exclude=PLAN_MODEL_ARGUMENTS), **model_kwargs}


def build_segmentation_model(name: str, plan: SegmentationPlan, model_kwargs: dict | None = None) -> nn.Module:
    """The registered segmentation model ``name`` sized by the plan (dimensions, channels, classes, and depth and
    width for the models whose factory takes them)."""

    segmentation_models = {entry.name: entry for entry in list_models("segmentation")}
    if name not in segmentation_models:
        raise MedlearnError(f"unknown segmentation model {name!r}; choose one of {', '.join(segmentation_models)}")
    kwargs = {"in_channels": plan.channels, "num_classes": plan.num_classes, "spatial_dims": plan.spatial_dims}
    parameters = inspect.signature(segmentation_models[name].factory).parameters
    kwargs.update({key: getattr(plan, key) for key in ("depth", "base_channels") if key in parameters})
    kwargs.update(model_kwargs or {})
    return create_model(name, **kwargs)


def read_segmentation_run(run) -> tuple[dict, SegmentationPlan, SegmenterSettings]:
    """``(config, plan, settings)`` recorded in a segmentation run directory (a :class:`RunDir`)."""
    config = run.read_config()
    if config.get("task") != "segmentation":
        raise MedlearnError("not a segmentation run (config.yaml task is not 'segmentation')", run.path)
    try:
        return config, SegmentationPlan(**config["plan"]), SegmenterSettings.from_dict(config["segmentation"])
    except (KeyError, TypeError) as error:
        raise MedlearnError(f"config.yaml is not a segmentation run config ({error})", run.config_path) from None
