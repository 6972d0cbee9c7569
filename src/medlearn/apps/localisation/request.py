"""What a ``localise train`` call asks for, and what it gives back (shared by the landmark and box trainings)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medlearn.apps.localisation.settings import LOCALISATION_TRAINING_DEFAULTS, LocaliserSettings
from medlearn.utils.settings import merge_layers


@dataclass
class LocalisationTrainRequest:
    """What the user asked for, with defaults, config file and CLI flags merged (CLI wins)."""

    data: str
    out: Path
    settings: LocaliserSettings
    training: dict
    val_data: str | None = None

    @classmethod
    def build(
        cls,
        *,
        data: str,
        out: Path,
        val_data: str | None = None,
        config_file: Path | None = None,
        overrides: dict | None = None,
    ) -> LocalisationTrainRequest:
        defaults = {"localisation": {}, "training": LOCALISATION_TRAINING_DEFAULTS}
        merged = merge_layers(defaults, config_file, overrides)
        settings = LocaliserSettings.from_dict(merged["localisation"])
        return cls(str(data), Path(out), settings, merged["training"], val_data)


@dataclass
class LocalisationOutcome:
    run_dir: Path
    report: Path | None
    metrics: dict
