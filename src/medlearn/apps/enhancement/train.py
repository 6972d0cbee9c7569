"""Train an enhancement (denoising / super-resolution) model end to end, fresh or resumed:
CSV -> hold out files for validation -> slices -> Trainer -> run directory -> report.html.

The run directory holds ``config.yaml`` (task ``enhancement``: degradation, model, data and training
settings), ``split.csv`` (which files trained and which validated; a ``modality`` given per row is kept
in its ``label`` column), checkpoints, ``metrics.csv``/``.json``, ``val_metrics.json``, ``examples/``
(degraded | restored | clean PNG triplets) and ``report.html``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

import medlearn
from medlearn.apps.common.request import TrainOutcome, TrainRequest
from medlearn.apps.common.run_info import announce
from medlearn.apps.enhancement.evaluate import report_after_training
from medlearn.apps.enhancement.settings import (
    ENHANCEMENT_TRAINING_DEFAULTS,
    TASK,
    EnhancerSettings,
    build_enhancement_model,
    read_enhancement_run,
)
from medlearn.apps.enhancement.slices import (
    EnhancementPatchDataset,
    enhancement_samples,
    grey_array,
    load_slices,
    validation_pairs,
)
from medlearn.apps.enhancement.task import EnhancementTask
from medlearn.data.patches import patch_loader
from medlearn.data.splits import Split, make_split
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.planning.normalization import IMAGES_MEASURED, ImageIntensity, choose_image_normalization

log = logging.getLogger("medlearn")


class EnhancementTrainRequest(TrainRequest[EnhancerSettings]):
    section = TASK
    settings_type = EnhancerSettings
    training_defaults = ENHANCEMENT_TRAINING_DEFAULTS


def train_enhancer(request: EnhancementTrainRequest, *, quiet: bool = False) -> TrainOutcome:
    """Fresh run on the files of ``request.data`` (validation: a held-out share of the files, by group)."""

    settings = request.settings
    config = TrainConfig.from_dict(request.training)
    build_enhancement_model(settings)  # unknown model / wrong kind fails before any data is read
    samples = enhancement_samples(request.data)
    # a sample's label holds its modality here, not a class to stratify by
    split = make_split(samples, val=settings.val_fraction, seed=config.seed, stratify=False)
    settings = choose_normalization(split.train, settings)
    announce(f"normalization {settings.normalization}: {settings.normalization_reason}", quiet=quiet)
    slices = _load(split, settings)  # reads every file: bad data fails here, before a run folder exists
    run = RunDir.create(request.out)
    split.to_csv(run.path / "split.csv")
    run.write_config(
        {
            "medlearn_version": medlearn.__version__,
            "task": TASK,
            "data": {"source": request.data},
            TASK: settings.to_dict(),
            "training": config.to_dict(),
        }
    )
    return _train_and_report(run, settings, config, slices, quiet=quiet, resume=False)


def resume_enhancer(run_dir: Path, *, max_minutes: float | None = None, quiet: bool = False) -> TrainOutcome:
    """Continue an interrupted run from its last checkpoint with its recorded settings and split;
    ``max_minutes`` replaces the recorded time budget (the run's total training time when the budget sizes the
    schedule, this invocation's when it only interrupts)."""
    import dataclasses

    run = RunDir.open(run_dir)
    config_doc, settings = read_enhancement_run(run)
    config = TrainConfig.from_dict(dict(config_doc["training"]), run.config_path)
    if max_minutes is not None:
        config = dataclasses.replace(config, max_minutes=max_minutes)
    split = Split.from_csv(run.path / "split.csv")
    slices = _load(split, settings)
    return _train_and_report(run, settings, config, slices, quiet=quiet, resume=True)


def choose_normalization(samples: list, settings: EnhancerSettings) -> EnhancerSettings:
    """``settings`` with the intensity scaling chosen from the training files, by the rule segmentation and
    classification use: one fixed range when the (non-CT) files share a scale, each file's own percentiles
    otherwise."""
    from dataclasses import replace

    if settings.normalization is not None and (settings.normalization == "image" or settings.intensity_bounds):
        return settings
    rng = np.random.default_rng(0)
    levels, pixels = [], []
    for sample in samples[:IMAGES_MEASURED]:
        chosen = settings.modality or sample.label
        image = load(sample.path, modality=chosen)  # unreadable: an error naming the file, as _load would give
        grey = grey_array(image).reshape(1, -1)
        levels.append(ImageIntensity.measure(grey, (chosen or image.modality), str(image.array.dtype)))
        pixels.append(grey[:, rng.choice(grey.shape[1], size=min(20_000, grey.shape[1]), replace=False)])
    if {level.modality for level in levels} == {"CT"}:
        return replace(settings, normalization="image", normalization_reason="CT: the HU window is one fixed scale")
    choice = choose_image_normalization(levels, pixels, forced=settings.normalization)
    bounds = [choice.params["clip_low"][0], choice.params["clip_high"][0]] if choice.scheme == "dataset" else None
    return replace(settings, normalization=choice.scheme, intensity_bounds=bounds, normalization_reason=choice.reason)


def _load(split: Split, settings: EnhancerSettings) -> dict[str, list]:

    if not split.train:
        raise MedlearnError("no training files left after holding out validation files")
    options = {
        "modality": settings.modality,
        "ct_window": settings.ct_window,
        "min_content": settings.min_content,
        "bounds": settings.bounds,
    }
    return {
        "train": load_slices(split.train, min_size=settings.patch_size, **options),
        # every file of the CSV must fit the crop, also the held-out ones (which are validated whole)
        "val": load_slices(split.val, min_size=settings.patch_size, **options),
    }


def _train_and_report(run, settings: EnhancerSettings, config, slices, *, quiet, resume) -> TrainOutcome:

    spec = settings.spec
    log.info(
        "enhancement (%s, %s): %d training, %d validation slices",
        settings.task,
        spec.text,
        len(slices["train"]),
        len(slices["val"]),
    )
    seed_everything(config.seed)
    model = build_enhancement_model(settings)
    dataset = EnhancementPatchDataset(
        slices["train"], spec, patch_size=settings.patch_size, augment=settings.augment, seed=config.seed
    )
    train_loader = patch_loader(
        dataset, batch_size=config.batch_size, batches_per_epoch=settings.batches_per_epoch, seed=config.seed
    )
    val_loader = (
        validation_pairs(
            slices["val"], spec, count=settings.val_slices, max_size=settings.val_max_size, seed=config.seed
        )
        or None
    )
    task = EnhancementTask(settings.loss)
    result = Trainer(task, model, train_loader, val_loader, config, run, quiet=quiet).fit(resume=resume)
    if slices["val"]:
        report, metrics = report_after_training(run.path, result, slices["val"], "the held-out validation files")
    else:  # a single file: nothing was held out, so the report can only show a training slice
        report, metrics = report_after_training(run.path, result, slices["train"][:1], "a TRAINING slice")
    return TrainOutcome(run.path, report, metrics)
