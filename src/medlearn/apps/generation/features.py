"""The feature networks generation is measured with: a trained classifier's penultimate layer (a classification
run directory) or the fixed random conv net. Here, not in :mod:`medlearn.evaluation`, because loading a run is
the classification task's business: the evaluation layer only sees a model and its preprocessing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medlearn.apps.classification.model import TrainedClassifier
from medlearn.evaluation.feature_network import FeatureExtractor, random_projection_network


def feature_network(source: str | None, channels: int, *, seed: int = 0, image_size: int = 128) -> FeatureExtractor:
    """The FID feature network: a classification run's penultimate layer, or the fixed random conv net."""
    if source:
        return classifier_features(source)
    return random_projection_network(seed, channels, image_size=image_size)


def classifier_features(
    run_dir: str | Path,
    *,
    checkpoint: str = "best",
    normalise: bool = True,
    modality: str | None = None,
    batch_size: int = 64,
) -> FeatureExtractor:
    """Penultimate features of the classifier of a ``medlearn classify train`` run directory.

    ``modality`` overrides the run's recorded modality for the intensity normalisation of
    [0, 1] images (needed only when the run trusted its files' modality and they were not
    JPG/PNG, which count as "OT"). ``normalise=False``: the images are already the classifier's
    normalised input (they are then only resized and their channels mapped).
    """
    trained = TrainedClassifier.from_run_dir(run_dir, checkpoint=checkpoint)
    preprocessing = trained.preprocessing
    if modality is not None:
        preprocessing = replace(preprocessing, modality=modality.upper())
    model_name = (trained.config or {}).get("classification", {}).get("model", type(trained.model).__name__)
    return FeatureExtractor.from_classifier(
        trained.model,
        preprocessing,
        normalise=normalise,
        name=f"classifier:{model_name}",
        description=(
            f"penultimate layer of medlearn classifier run {run_dir} ({model_name}, {preprocessing.image_size} px)"
        ),
        batch_size=batch_size,
    )
