"""Evaluation of trained models: metrics with confidence intervals, calibration, Grad-CAM.

``medlearn.evaluation.gradcam`` imports MONAI, so it is loaded only when first used.
"""

from medlearn.evaluation.calibration import (
    ReliabilityBins,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from medlearn.evaluation.classification import (
    METRIC_NAMES,
    bootstrap_intervals,
    classification_metrics,
    confusion,
    metrics_with_intervals,
    to_jsonable,
)

__all__ = [
    "METRIC_NAMES",
    "ReliabilityBins",
    "apply_temperature",
    "bootstrap_intervals",
    "classification_metrics",
    "confusion",
    "expected_calibration_error",
    "fit_temperature",
    "gradcam_maps",
    "metrics_with_intervals",
    "negative_log_likelihood",
    "overlay",
    "reliability_bins",
    "to_jsonable",
]


def __getattr__(name: str):
    if name in ("gradcam_maps", "overlay"):
        from medlearn.evaluation import gradcam  # on first use: Grad-CAM needs torch hooks most callers never use

        return getattr(gradcam, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
