"""Everything about an enhancement run that is not generic training: degradation, data, model, sampling."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from medlearn.data.degradation import DegradationSpec, parse_degradation
from medlearn.errors import MedlearnError
from medlearn.models import create_model, list_models
from medlearn.models.enhancement import DEFAULT_ENHANCEMENT_MODELS, ENHANCEMENT_KINDS
from medlearn.planning.normalization import check_image_scheme
from medlearn.utils.settings import settings_from_dict

TASK = "enhancement"
KINDS = ("denoise", "sr")

#: Training defaults for enhancement (the engine's generic defaults are task-agnostic).
ENHANCEMENT_TRAINING_DEFAULTS = {
    "default_epochs": 30,  # --max-minutes without --epochs: the budget decides
    "batch_size": 16,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "warmup_epochs": 1.0,
    "grad_clip": 1.0,
    "early_stopping_patience": None,
    "channels_last": False,
    "precision": "auto",
}


@dataclass
class EnhancerSettings:
    """Task settings of an enhancement run, stored in ``config.yaml`` under ``enhancement``."""

    #: "denoise" or "sr" (super-resolution).
    task: str = "denoise"
    #: The degradation spec the model learns to undo (:mod:`medlearn.data.degradation`).
    degradation: str = "gaussian:0.05"
    #: Registered enhancement model; None picks the default of the task (dncnn / sr-resnet).
    model: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    #: Modality for every file (CT: HU window; others: percentiles), else the CSV column / file's own.
    modality: str | None = None
    #: CT window preset mapped to [0, 1] (see medlearn.io.intensity.CT_WINDOWS).
    ct_window: str = "abdomen"
    #: Side of the square training crop (the clean, high-resolution patch).
    patch_size: int = 64
    batches_per_epoch: int = 50
    #: Share of files (by group) held out for validation.
    val_fraction: float = 0.2
    #: Whole slices validated each epoch (spread over the held-out files), centre-cropped to val_max_size.
    val_slices: int = 8
    val_max_size: int = 256
    #: Volumes: skip slices with fewer than this share of pixels above 5% of the intensity range.
    min_content: float = 0.1
    loss: str = "l1"
    augment: bool = True
    #: "image" (each file scaled by its own percentiles) or "dataset" (one fixed range learned on the training
    #: files, :mod:`medlearn.planning.normalization`); None in a request: chosen from the data; None in a run
    #: written before the choice existed: "image".
    normalization: str | None = None
    #: The fixed (low, high) range of the "dataset" scheme (non-CT files; CT keeps its HU window).
    intensity_bounds: list[float] | None = None
    normalization_reason: str = ""

    def __post_init__(self) -> None:
        if self.task not in KINDS:
            raise MedlearnError(f"enhancement task must be 'denoise' or 'sr', got {self.task!r}")
        spec = parse_degradation(self.degradation)
        self.degradation = spec.text
        if spec.task != self.task:
            need = "downsample:2|4 (--scale)" if self.task == "sr" else "a noise spec (--noise)"
            raise MedlearnError(f"task {self.task} needs {need}, not {spec.text!r}")
        if self.model is None:
            self.model = DEFAULT_ENHANCEMENT_MODELS[self.task]
        if self.patch_size < 16 or self.patch_size % spec.scale:
            raise MedlearnError(f"patch_size must be >= 16 and a multiple of {spec.scale}, got {self.patch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise MedlearnError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.batches_per_epoch < 1:
            raise MedlearnError(f"batches_per_epoch must be at least 1, got {self.batches_per_epoch}")
        if not 0.0 <= self.min_content < 1.0:
            raise MedlearnError(f"min_content must be in [0, 1), got {self.min_content}")
        if self.normalization is not None:
            check_image_scheme(self.normalization)

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The fixed intensity range of non-CT files, or None (each file's own percentiles)."""
        if self.normalization == "dataset" and self.intensity_bounds:
            low, high = self.intensity_bounds
            return float(low), float(high)
        return None

    @property
    def spec(self) -> DegradationSpec:
        return parse_degradation(self.degradation)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EnhancerSettings:
        return settings_from_dict(cls, values, "enhancement")


def build_enhancement_model(settings: EnhancerSettings) -> nn.Module:
    """The registered enhancement model of ``settings``, checked against the task (denoise vs SR)."""

    known = [entry.name for entry in list_models(TASK)]
    if settings.model not in known:
        raise MedlearnError(f"unknown enhancement model {settings.model!r}; choose one of {', '.join(known)}")
    kind = ENHANCEMENT_KINDS.get(settings.model, settings.task)
    if kind != settings.task:
        fitting = [name for name in known if ENHANCEMENT_KINDS.get(name) == settings.task]
        raise MedlearnError(
            f"model {settings.model!r} is for {kind}, not {settings.task}; choose one of {', '.join(fitting)}"
        )
    kwargs = {"in_channels": 1, **({"scale": settings.spec.scale} if kind == "sr" else {})}
    kwargs.update(settings.model_kwargs or {})
    try:
        return create_model(settings.model, **kwargs)
    except TypeError as error:
        raise MedlearnError(f"bad model_kwargs for {settings.model}: {error}") from None


def read_enhancement_run(run) -> tuple[dict, EnhancerSettings]:
    """``(config, settings)`` recorded in an enhancement run directory (a :class:`RunDir`)."""
    config = run.read_config()
    if config.get("task") != TASK:
        found = config.get("task")
        raise MedlearnError(f"not an enhancement run (config.yaml task is {found!r}, not {TASK!r})", run.path)
    try:
        return config, EnhancerSettings.from_dict(dict(config[TASK]))
    except (KeyError, TypeError) as error:
        raise MedlearnError(f"config.yaml is not an enhancement run config ({error})", run.config_path) from None
