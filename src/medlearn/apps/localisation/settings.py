"""Everything about a landmark-localisation run that is not generic training: data, model, targets, decoding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models import create_model, list_models, model_defaults
from medlearn.planning.plan import SegmentationPlan
from medlearn.utils.settings import settings_from_dict

#: The defaults of ``localise train`` for landmark files and for boxes (masks or boxes CSVs).
DEFAULT_MODEL = "landmark-heatmap"
DEFAULT_BOX_MODEL = "box-slices"
#: Models that localise boxes (the others localise landmarks).
BOX_MODELS = ("box-slices",)

LOCALISATION_TRAINING_DEFAULTS = {
    "default_epochs": 60,  # --max-minutes without --epochs: the budget decides
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "warmup_epochs": 1.0,
    "grad_clip": 12.0,
    "early_stopping_patience": None,
    "channels_last": False,
    "precision": "auto",
}

#: Model arguments the plan and the landmark or structure set supply (never recorded in ``model_kwargs``).
PLAN_MODEL_ARGUMENTS = ("in_channels", "num_landmarks", "num_structures", "spatial_dims", "depth", "base_channels")


@dataclass
class LocaliserSettings:
    """Task settings of a localisation run, stored in ``config.yaml`` under ``localisation``."""

    #: None: chosen from the annotations (landmark files: DEFAULT_MODEL; masks or boxes: DEFAULT_BOX_MODEL).
    model: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    modality: str | None = None
    plan_overrides: dict = field(default_factory=dict)
    #: Share of images (by group) held out for validation when no validation CSV is given.
    val_fraction: float = 0.2
    batches_per_epoch: int = 50
    #: Share of patches centred on a landmark (the rest uniform: the network must also learn where none is).
    foreground_fraction: float = 0.67
    augment: bool = True
    #: Width of the target heat maps in mm (None: two voxels of the plan's grid).
    sigma_mm: float | None = None
    #: Window overlap of sliding-window inference at validation and prediction time.
    val_overlap: float = 0.25
    overlap: float = 0.5
    #: The landmark names, in the network's channel order (set by training from the data).
    landmarks: list[str] = field(default_factory=list)
    #: Boxes: the structures, in the classifiers' output order (set by training), and the slice size.
    structures: list[str] = field(default_factory=list)
    slice_size: int = 96

    def __post_init__(self) -> None:
        known = [entry.name for entry in list_models("localisation")]
        if self.model is not None and self.model not in known:
            raise MedlearnError(f"unknown localisation model {self.model!r}; choose one of {', '.join(known)}")
        if not 0.0 <= self.foreground_fraction <= 1.0:
            raise MedlearnError(f"foreground_fraction must be between 0 and 1, got {self.foreground_fraction}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise MedlearnError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.batches_per_epoch < 1:
            raise MedlearnError(f"batches_per_epoch must be at least 1, got {self.batches_per_epoch}")
        if self.sigma_mm is not None and not self.sigma_mm > 0:
            raise MedlearnError(f"sigma_mm must be positive, got {self.sigma_mm}")
        if self.slice_size < 16:
            raise MedlearnError(f"slice_size must be at least 16, got {self.slice_size}")

    @property
    def boxes(self) -> bool:
        """Whether this run localises boxes (else landmarks)."""
        return self.model in BOX_MODELS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> LocaliserSettings:
        return settings_from_dict(cls, values, "localisation")


def recorded_model_kwargs(name: str, model_kwargs: dict) -> dict:
    """``model_kwargs`` completed with the factory's current defaults, so an old run keeps its architecture."""
    return {**model_defaults(name, exclude=PLAN_MODEL_ARGUMENTS), **model_kwargs}


def build_localisation_model(settings: LocaliserSettings, plan: SegmentationPlan) -> nn.Module:
    """The registered localisation model sized by the plan and the landmark (or structure) set."""
    if settings.boxes:
        kwargs = {"in_channels": plan.channels, "num_structures": len(settings.structures)}
        return create_model(settings.model, **{**kwargs, **settings.model_kwargs})
    kwargs = {
        "in_channels": plan.channels,
        "num_landmarks": len(settings.landmarks),
        "spatial_dims": plan.spatial_dims,
        "depth": plan.depth,
        "base_channels": plan.base_channels,
    }
    return create_model(settings.model, **{**kwargs, **settings.model_kwargs})


def read_localisation_run(run) -> tuple[dict, SegmentationPlan, LocaliserSettings]:
    """``(config, plan, settings)`` recorded in a localisation run directory (a :class:`RunDir`)."""
    config = run.read_config()
    if config.get("task") != "localisation":
        raise MedlearnError("not a localisation run (config.yaml task is not 'localisation')", run.path)
    try:
        return config, SegmentationPlan(**config["plan"]), LocaliserSettings.from_dict(config["localisation"])
    except (KeyError, TypeError) as error:
        raise MedlearnError(f"config.yaml is not a localisation run config ({error})", run.config_path) from None
