"""Deprecated: use ``medlearn.apps.segmentation.model`` (kept for one release)."""

import warnings

from medlearn.apps.segmentation.model import SegmentationPrediction, TrainedSegmenter  # noqa: F401

warnings.warn(
    "medlearn.workflows.segmenter moved to medlearn.apps.segmentation.model;"
    " the old name goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
