"""Train a classifier on in-memory arrays for a fixed number of steps, without a validation split.

``classify train`` (:mod:`medlearn.apps.classification.data`) picks its epoch on a validation
part; a study with very few labels cannot spare one, so it trains every run for the same step budget
and evaluates the last weights. This is that training, through the engine's
:class:`~medlearn.engine.trainer.Trainer` and :class:`~medlearn.apps.classification.task.ClassificationTask`,
usable by any study that holds its images as arrays (the augmentation study is the first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from medlearn.apps.classification.task import ClassificationTask, inverse_frequency_weights
from medlearn.data.augment import build_augmentation
from medlearn.data.dataset import ArrayClassificationDataset
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import make_loader_generator, seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.errors import MedlearnError
from medlearn.models import create_model
from medlearn.models.autoencoder import copy_trunk, state_digest, trunk_state


@dataclass(frozen=True)
class ArrayTraining:
    """A fixed-budget training on in-memory arrays (no validation): the model and how it is optimised. Studies
    build one from their own settings, so these helpers depend on no study."""

    model: str
    model_kwargs: dict = field(default_factory=dict)
    channels: int = 1
    image_size: int = 64
    #: Modality of the images, for the augmentation's intensity ranges (None: "OT").
    modality: str | None = None
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    #: Share of the steps spent on linear warm-up.
    warmup_share: float = 0.05
    precision: str = "auto"
    num_threads: int | None = None
    #: A time budget per run (the schedule is sized to it), or None.
    minutes: float | None = None

    def loader(self, images: np.ndarray, labels: np.ndarray, generator: torch.Generator) -> DataLoader:
        """Shuffled, augmented (classic augmentation of the modality) batches of the arrays."""
        dataset = ArrayClassificationDataset(images, labels, build_augmentation(self.modality or "OT", spatial_dims=2))
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            drop_last=len(dataset) > self.batch_size,
        )

    def config(self, epochs: int, seed: int) -> TrainConfig:
        """The engine's settings for ``epochs`` epochs (capped by ``minutes``)."""
        return TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_share * epochs,
            grad_clip=1.0,
            seed=seed,
            max_minutes=self.minutes,
            channels_last=True,
            precision=self.precision,
            num_threads=self.num_threads,
        )


def train_classifier_on_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    positive: int,
    training: ArrayTraining,
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
    ``training`` gives the model, channels, modality (augmentation), batch size and optimisation settings.
    """

    seed_everything(seed)
    model = create_model(
        training.model, in_channels=training.channels, num_classes=num_classes, **training.model_kwargs
    )
    if init_state is not None:
        copy_trunk(init_state, model)
    try:
        init_digest = state_digest(trunk_state(model))  # what the trunk starts from, recorded in runs.csv
    except MedlearnError:  # an architecture without a known trunk (classic and gan arms still train)
        init_digest = ""
    generator = make_loader_generator(seed)
    loader = training.loader(images, labels, generator)
    config = training.config(max(1, round(steps / len(loader))), seed)
    task = ClassificationTask(
        num_classes, class_weights=inverse_frequency_weights(labels, num_classes), positive=positive
    )
    trainer = Trainer(task, model, loader, None, config, RunDir(run_dir), generator=generator, quiet=quiet)
    fit = trainer.fit()
    return trainer.model, fit.epochs_run, fit.epochs_run * len(loader), init_digest
