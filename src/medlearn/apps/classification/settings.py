"""Everything about a classification run that is not generic training: data, model, preprocessing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from medlearn.data.preprocess import ClassificationPreprocessing, parse_ct_window
from medlearn.planning.normalization import check_image_scheme
from medlearn.utils.settings import settings_from_dict

#: The default of ``classify train``, chosen by benchmarks/classification.py (see benchmarks/RESULTS.md).
DEFAULT_MODEL = "cls-multires"


@dataclass
class ClassifierSettings:
    """Task settings of a classification run, stored in ``config.yaml`` under ``classification``."""

    model: str = DEFAULT_MODEL
    model_kwargs: dict = field(default_factory=dict)
    image_size: int = 128
    channels: int = 1
    modality: str | None = None
    ct_window: str | None = None
    val_fraction: float = 0.15
    #: Held out for the report: the validation part picked the checkpoint and fitted the temperature, so figures
    #: computed on it would be optimistic (0 reports on validation, and the report says so).
    test_fraction: float = 0.15
    duplicate_threshold: int | None = None
    #: Group near-duplicate images before splitting (off only to measure what a leaky split reports).
    group_duplicates: bool = True
    class_weighting: bool = True
    label_smoothing: float = 0.0
    augment: bool = True
    monitor: str = "loss"
    positive: str | None = None
    #: "image" or "dataset" (:mod:`medlearn.planning.normalization`); None in a request: chosen from the
    #: training images; None in a run written before the choice existed: "image", what it was trained with.
    normalization: str | None = None
    normalization_params: dict = field(default_factory=dict)
    normalization_reason: str = ""

    def __post_init__(self) -> None:
        if self.ct_window is not None:
            parse_ct_window(self.ct_window)  # fail before any image is read, not once per image
        if self.normalization is not None:
            check_image_scheme(self.normalization)

    @property
    def preprocessing(self) -> ClassificationPreprocessing:
        return ClassificationPreprocessing(
            image_size=self.image_size,
            channels=self.channels,
            modality=self.modality,
            ct_window=self.ct_window,
            normalization=self.normalization or "image",
            normalization_params=self.normalization_params,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ClassifierSettings:
        return settings_from_dict(cls, values, "classification")
