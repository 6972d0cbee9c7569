"""Run a classification training end to end, fresh or resumed, and write its report."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import medlearn
from medlearn.apps.classification.data import (
    choose_normalization,
    labelled_classes,
    make_loaders,
    prepare_data,
    split_with_duplicate_groups,
)
from medlearn.apps.classification.evaluate import report_after_training
from medlearn.apps.classification.model import positive_index
from medlearn.apps.classification.settings import ClassifierSettings
from medlearn.apps.classification.task import ClassificationTask, inverse_frequency_weights
from medlearn.apps.common.request import TrainOutcome, TrainRequest
from medlearn.apps.common.run_info import announce
from medlearn.data.sources import load_samples
from medlearn.data.splits import Split
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import make_loader_generator, seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.models import create_model, model_defaults
from medlearn.utils.yaml_files import read_yaml

log = logging.getLogger("medlearn")

#: Training defaults for classification (the engine's generic defaults are task-agnostic).
CLASSIFICATION_TRAINING_DEFAULTS = {
    "default_epochs": 30,  # --max-minutes without --epochs: the budget decides
    "batch_size": 64,
    "lr": 2e-3,
    "weight_decay": 0.05,
    "warmup_epochs": 1.0,
    "grad_clip": 1.0,
    "early_stopping_patience": 8,
    "channels_last": True,
    "precision": "auto",
}


class ClassificationTrainRequest(TrainRequest[ClassifierSettings]):
    section = "classification"
    settings_type = ClassifierSettings
    training_defaults = CLASSIFICATION_TRAINING_DEFAULTS


def train_classifier(request: ClassificationTrainRequest, *, strict: bool = False, quiet: bool = False) -> TrainOutcome:
    """Fresh run: group duplicates, split, decode once, train, evaluate on the held-out part, report."""

    config = TrainConfig.from_dict(request.training)
    samples = load_samples(request.data)
    classes = labelled_classes(samples, request.data)
    split = split_with_duplicate_groups(samples, request.settings, config.seed)
    settings = choose_normalization(split.train, request.settings, config.seed)
    # the factory's current defaults written into the run: a later change of a default keeps this run loadable
    recorded = {**model_defaults(settings.model, exclude=("in_channels", "num_classes")), **settings.model_kwargs}
    settings = replace(settings, model_kwargs=recorded)
    announce(f"normalization {settings.normalization}: {settings.normalization_reason}", quiet=quiet)
    data = prepare_data(split, classes, settings, strict=strict, cache_dir=default_cache_dir())
    run = RunDir.create(request.out)  # only once the data are known to be usable: no half-made run folders
    split.to_csv(run.path / "split.csv")
    run.write_config(
        {
            "medlearn_version": medlearn.__version__,
            "task": "classification",
            "data": {"source": request.data},
            "classes": classes,
            "classification": settings.to_dict(),
            "training": config.to_dict(),
        }
    )
    return _train_and_report(run, settings, config, data, quiet=quiet, resume=False)


def resume_classifier(run_dir: Path, *, strict: bool = False, quiet: bool = False) -> TrainOutcome:
    """Continue an interrupted run from its last checkpoint, with its recorded config and split."""

    run = RunDir.open(run_dir)
    config_doc = read_yaml(run.path / "config.yaml")
    settings = ClassifierSettings.from_dict(config_doc["classification"])
    config = TrainConfig.from_dict(config_doc["training"])
    split = Split.from_csv(run.path / "split.csv")
    data = prepare_data(split, list(config_doc["classes"]), settings, strict=strict, cache_dir=default_cache_dir())
    return _train_and_report(run, settings, config, data, quiet=quiet, resume=True)


def _train_and_report(run, settings, config, data, *, quiet, resume) -> TrainOutcome:

    classes = data.classes
    summary = data.summary()
    log.info("data: %s", {part: sum(c.values()) for part, c in summary["counts"].items()})
    for path, reason in data.skipped:
        log.warning("skipped %s: %s", path, reason)
    run.write_json("data_summary.json", summary)

    seed_everything(config.seed)  # model initialisation is part of the run's reproducible state
    generator = make_loader_generator(config.seed)
    train_loader, val_loader = make_loaders(data, settings, config.batch_size, generator)
    model = create_model(
        settings.model, in_channels=settings.channels, num_classes=len(classes), **settings.model_kwargs
    )
    weights = inverse_frequency_weights(data.labels("train"), len(classes)) if settings.class_weighting else None
    task = ClassificationTask(
        len(classes),
        class_weights=weights,
        label_smoothing=settings.label_smoothing,
        positive=positive_index(classes, settings.positive),
        monitor=settings.monitor,
    )
    trainer = Trainer(task, model, train_loader, val_loader, config, run, generator=generator, quiet=quiet)
    result = trainer.fit(resume=resume)
    report, metrics = report_after_training(run.path, data, settings, result)
    return TrainOutcome(run.path, report, metrics)


def default_cache_dir() -> Path:
    """Where decoded, preprocessed arrays are kept between runs (``~/.cache/medlearn/preprocessed``)."""
    return Path.home() / ".cache" / "medlearn" / "preprocessed"
