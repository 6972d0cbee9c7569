"""Train a classifier on in-memory arrays for a fixed number of steps, without a validation split.

``classify train`` (:mod:`medlearn.apps.classification.data`) picks its epoch on a validation
part; a study with very few labels cannot spare one, so it trains every run for the same step budget
and evaluates the last weights. This is that training, through the engine's
:class:`~medlearn.engine.trainer.Trainer` and :class:`~medlearn.apps.classification.task.ClassificationTask`,
usable by any study that holds its images as arrays (the augmentation study is the first).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from medlearn.errors import MedlearnError

if TYPE_CHECKING:
    from medlearn.apps.studies.augmentation import StudySettings


def train_classifier_on_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    positive: int,
    settings: StudySettings,
    seed: int,
    steps: int,
    run_dir: Path,
    *,
    init_state: dict[str, torch.Tensor] | None = None,
    quiet: bool = True,
) -> tuple[torch.nn.Module, int, int, str]:
    """Train a fresh classifier (trunk from ``init_state`` if given) for about ``steps`` steps; no validation.

    Returns ``(model, epochs run, steps run, digest of the trunk's initial weights)``. The model's
    random initialisation depends on ``seed`` only, so every arm of a seed starts from the same weights.
    ``settings`` gives the model, channels, modality (augmentation), batch size and optimisation settings.
    """
    from torch.utils.data import DataLoader

    from medlearn.apps.classification.task import ClassificationTask, inverse_frequency_weights
    from medlearn.data.augment import build_augmentation
    from medlearn.data.dataset import ArrayClassificationDataset
    from medlearn.engine.config import TrainConfig
    from medlearn.engine.reproducibility import make_loader_generator, seed_everything
    from medlearn.engine.rundir import RunDir
    from medlearn.engine.trainer import Trainer
    from medlearn.models import create_model
    from medlearn.models.autoencoder import copy_trunk, state_digest, trunk_state

    seed_everything(seed)
    model = create_model(
        settings.model, in_channels=settings.channels, num_classes=num_classes, **settings.model_kwargs
    )
    if init_state is not None:
        copy_trunk(init_state, model)
    try:
        init_digest = state_digest(trunk_state(model))  # what the trunk starts from, recorded in runs.csv
    except MedlearnError:  # an architecture without a known trunk (classic and gan arms still train)
        init_digest = ""
    generator = make_loader_generator(seed)
    dataset = ArrayClassificationDataset(images, labels, build_augmentation(settings.modality or "OT", spatial_dims=2))
    loader = DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=generator,
        drop_last=len(dataset) > settings.batch_size,
    )
    epochs = max(1, round(steps / len(loader)))
    config = TrainConfig(
        epochs=epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        warmup_epochs=settings.warmup_share * epochs,
        grad_clip=1.0,
        seed=seed,
        max_minutes=settings.minutes_per_run,
        fit_schedule_to_budget=settings.minutes_per_run is not None,
        channels_last=True,
        precision=settings.precision,
        num_threads=settings.num_threads,
    )
    task = ClassificationTask(
        num_classes, class_weights=inverse_frequency_weights(labels, num_classes), positive=positive
    )
    trainer = Trainer(task, model, loader, None, config, RunDir(run_dir), generator=generator, quiet=quiet)
    fit = trainer.fit()
    return trainer.model, fit.epochs_run, fit.epochs_run * len(loader), init_digest
