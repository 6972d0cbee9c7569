"""What a ``localise train`` call asks for (shared by the landmark and box trainings)."""

from __future__ import annotations

from medlearn.apps.common.request import TrainRequest
from medlearn.apps.localisation.settings import LOCALISATION_TRAINING_DEFAULTS, LocaliserSettings


class LocalisationTrainRequest(TrainRequest[LocaliserSettings]):
    section = "localisation"
    settings_type = LocaliserSettings
    training_defaults = LOCALISATION_TRAINING_DEFAULTS
