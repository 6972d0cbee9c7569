"""Everything about a detection run that is not generic training: data, model, sampling, decoding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models import create_model, list_models, model_defaults
from medlearn.planning.plan import SegmentationPlan
from medlearn.utils.settings import settings_from_dict

#: The default of ``detect train`` (see benchmarks/RESULTS.md, detection section).
DEFAULT_MODEL = "centre-heatmap"

#: Training defaults for detection (the engine's generic defaults are task-agnostic).
DETECTION_TRAINING_DEFAULTS = {
    "default_epochs": 40,  # --max-minutes without --epochs: the budget decides
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "warmup_epochs": 1.0,
    "grad_clip": 12.0,
    "early_stopping_patience": None,
    "channels_last": False,
    "precision": "auto",
}

#: Model arguments the plan supplies (never recorded in ``model_kwargs``).
PLAN_MODEL_ARGUMENTS = ("in_channels", "spatial_dims", "depth", "base_channels")


@dataclass
class DetectorSettings:
    """Task settings of a detection run, stored in ``config.yaml`` under ``detection``."""

    model: str = DEFAULT_MODEL
    model_kwargs: dict = field(default_factory=dict)
    modality: str | None = None
    #: Plan values to override (``--set key=value``), applied after the fingerprint chose the rest.
    plan_overrides: dict = field(default_factory=dict)
    #: Share of images (by group) held out for validation when no validation CSV is given.
    val_fraction: float = 0.2
    batches_per_epoch: int = 50
    #: Share of patches centred on an object (the rest uniform, so empty tissue is seen too).
    foreground_fraction: float = 0.5
    augment: bool = True
    #: Radius (mm) of annotated points whose file gives none: the hit distance and the size of the target.
    point_radius_mm: float = 5.0
    #: Candidates kept per image (enough to reach 8 false positives per image on the FROC curve).
    max_candidates: int = 100
    #: Window overlap of sliding-window inference at validation (cheaper) and prediction time.
    val_overlap: float = 0.25
    overlap: float = 0.5
    tta: bool = False

    def __post_init__(self) -> None:
        known = [entry.name for entry in list_models("detection")]
        if self.model not in known:
            raise MedlearnError(f"unknown detection model {self.model!r}; choose one of {', '.join(known)}")
        if not 0.0 <= self.foreground_fraction <= 1.0:
            raise MedlearnError(f"foreground_fraction must be between 0 and 1, got {self.foreground_fraction}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise MedlearnError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.batches_per_epoch < 1:
            raise MedlearnError(f"batches_per_epoch must be at least 1, got {self.batches_per_epoch}")
        if not self.point_radius_mm > 0:
            raise MedlearnError(f"point_radius_mm must be positive, got {self.point_radius_mm}")
        if self.max_candidates < 1:
            raise MedlearnError(f"max_candidates must be at least 1, got {self.max_candidates}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DetectorSettings:
        return settings_from_dict(cls, values, "detection")


def recorded_model_kwargs(name: str, model_kwargs: dict) -> dict:
    """``model_kwargs`` completed with the factory's current defaults, so an old run keeps its architecture."""
    return {**model_defaults(name, exclude=PLAN_MODEL_ARGUMENTS), **model_kwargs}


def build_detection_model(name: str, plan: SegmentationPlan, model_kwargs: dict | None = None) -> nn.Module:
    """The registered detection model ``name`` (checked by :class:`DetectorSettings`) sized by the plan."""
    kwargs = {
        "in_channels": plan.channels,
        "spatial_dims": plan.spatial_dims,
        "depth": plan.depth,
        "base_channels": plan.base_channels,
    }
    return create_model(name, **{**kwargs, **(model_kwargs or {})})


def read_detection_run(run) -> tuple[dict, SegmentationPlan, DetectorSettings]:
    """``(config, plan, settings)`` recorded in a detection run directory (a :class:`RunDir`)."""
    config = run.read_config()
    if config.get("task") != "detection":
        raise MedlearnError("not a detection run (config.yaml task is not 'detection')", run.path)
    try:
        return config, SegmentationPlan(**config["plan"]), DetectorSettings.from_dict(config["detection"])
    except (KeyError, TypeError) as error:
        raise MedlearnError(f"config.yaml is not a detection run config ({error})", run.config_path) from None
