"""Deprecated: use ``medlearn.apps.classification.model`` (kept for one release)."""

import warnings

from medlearn.apps.classification.model import TrainedClassifier, positive_index, weights_path  # noqa: F401

warnings.warn(
    "medlearn.workflows.classifier moved to medlearn.apps.classification.model;"
    " the old name goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
