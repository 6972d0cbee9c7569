"""Deprecated: use ``medlearn.apps.classification.train`` (kept for one release)."""

import warnings

from medlearn.apps.classification.train import ClassificationTrainRequest as TrainRequest  # noqa: F401
from medlearn.apps.classification.train import TrainOutcome, resume_classifier, train_classifier  # noqa: F401

warnings.warn(
    "medlearn.workflows.classification_run moved to medlearn.apps.classification.train;"
    " the old name goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
