"""``medlearn register train``: a learned registration model from a cohort CSV, on the one engine:
CSV ``path[,labels][,group]`` -> hold out images (by group) -> every image affinely pre-aligned onto the first
training image's network grid -> random pairs (cohort pairs and synthetic deformations) -> Trainer -> run folder.

The run folder holds ``config.yaml`` (task ``registration``: grid spacing, losses, pairs, model), ``split.csv``,
checkpoints (best by validation label Dice, or NCC without labels), ``metrics.csv``/``.json`` and
``validation.json`` (the best epoch's scores).
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import nn

import medlearn
from medlearn.apps.common.request import TrainRequest
from medlearn.apps.registration.cohort import check_labelled, load_cohort
from medlearn.apps.registration.pairs import PairDataset, validation_pairs
from medlearn.apps.registration.settings import (
    REGISTRATION_TRAINING_DEFAULTS,
    TASK,
    RegistrationSettings,
)
from medlearn.apps.registration.task import RegistrationTask
from medlearn.data.patches import patch_loader
from medlearn.data.sources import samples_from_csv
from medlearn.data.splits import make_split
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.errors import MedlearnError
from medlearn.models import create_model, list_models

log = logging.getLogger("medlearn")


class RegistrationTrainRequest(TrainRequest[RegistrationSettings]):
    section = TASK
    settings_type = RegistrationSettings
    training_defaults = REGISTRATION_TRAINING_DEFAULTS


def build_registration_model(settings: RegistrationSettings, spatial_dims: int) -> nn.Module:
    known = [entry.name for entry in list_models(TASK)]
    if settings.model not in known:
        raise MedlearnError(f"unknown registration model {settings.model!r}; choose one of {', '.join(known)}")
    try:
        return create_model(settings.model, spatial_dims=spatial_dims, **(settings.model_kwargs or {}))
    except TypeError as error:
        raise MedlearnError(f"bad model_kwargs for {settings.model}: {error}") from None


def train_registration(request: RegistrationTrainRequest, *, quiet: bool = False) -> dict:
    """Train on the cohort of ``request.data``; returns the best validation scores (also in validation.json)."""
    settings = request.settings
    config = TrainConfig.from_dict(request.training)
    samples = samples_from_csv(request.data)
    check_labelled(samples)
    split = make_split(samples, val=settings.val_fraction, seed=config.seed, stratify=False)
    grid, train_volumes = load_cohort(split.train, settings)
    spacing = float(abs(grid.spacing[0]))
    settings = dataclasses.replace(settings, grid_spacing=spacing, labelled=train_volumes[0].labels is not None)
    reference = split.train[0].path
    val_volumes = load_cohort(split.val, settings, reference=reference)[1] if split.val else train_volumes
    num_labels = _label_count(train_volumes + val_volumes)
    spatial_dims = grid.spatial_ndim
    build_registration_model(settings, spatial_dims)  # a bad model name fails before the run folder exists
    run = RunDir.create(request.out)
    split.to_csv(run.path / "split.csv")
    run.write_config(
        {
            "medlearn_version": medlearn.__version__,
            "task": TASK,
            "data": {
                "source": request.data,
                "reference": str(reference),
                "num_labels": num_labels,
                "spatial_dims": spatial_dims,
            },
            TASK: settings.to_dict(),
            "training": config.to_dict(),
        }
    )
    log.info(
        "registration: %d training, %d validation images on a %s grid of %.2f mm",
        len(train_volumes),
        len(split.val),
        "x".join(str(n) for n in grid.spatial_shape),
        spacing,
    )
    seed_everything(config.seed)
    model = build_registration_model(settings, spatial_dims)
    dataset = PairDataset(train_volumes, settings, spacing, seed=config.seed)
    loader = patch_loader(
        dataset, batch_size=config.batch_size, batches_per_epoch=settings.batches_per_epoch, seed=config.seed
    )
    val_loader = validation_pairs(val_volumes, settings, spacing, seed=config.seed)
    task = RegistrationTask(settings, spatial_dims, num_labels)
    with torch.no_grad():
        identity = task.validation_metrics([task.validation_step(model, batch) for batch in val_loader])
    result = Trainer(task, model, loader, val_loader, config, run, quiet=quiet).fit()
    best = next((row for row in result.history if row["epoch"] == result.best_epoch), result.history[-1])
    scores = {
        "monitor": task.monitor,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
        "stopped": result.stopped_reason,
        "untrained": identity,
        "best": {key.removeprefix("val_"): value for key, value in best.items() if key.startswith("val_")},
        "grid_spacing_mm": spacing,
        "grid_shape": list(grid.spatial_shape),
    }
    run.write_json("validation.json", scores)
    return scores


def _label_count(volumes) -> int:
    """Labels 0..K-1 the one-hot Dice loss needs (0: the cohort has no label maps)."""
    if volumes[0].labels is None:
        return 0
    top = max(int(volume.labels.max()) for volume in volumes)
    if top > 50:
        raise MedlearnError(f"label maps with values up to {top}: registration handles at most 50 labels")
    return top + 1
