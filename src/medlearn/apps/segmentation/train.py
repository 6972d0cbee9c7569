"""Run a segmentation training end to end, fresh or resumed: fingerprint -> plan -> train -> report.

As in nnU-Net, the dataset's fingerprint (of the training cases only, so validation data cannot
leak into the choices) decides the plan; the plan is written to the run directory (``plan.json``,
also inside ``config.yaml``) and prediction reads it back, so a model is always applied with the
spacing, normalisation and patch it was trained with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import medlearn
from medlearn.apps.common.request import TrainOutcome, TrainRequest
from medlearn.apps.common.run_info import announce
from medlearn.apps.segmentation.baseline import fit_and_store
from medlearn.apps.segmentation.cases import load_pair, prepare_cases
from medlearn.apps.segmentation.cropping import RegionCropper
from medlearn.apps.segmentation.evaluate import report_after_training
from medlearn.apps.segmentation.settings import (
    SEGMENTATION_TRAINING_DEFAULTS,
    SegmenterSettings,
    build_segmentation_model,
    read_segmentation_run,
    recorded_model_kwargs,
)
from medlearn.apps.segmentation.task import SegmentationTask
from medlearn.data.patches import PatchDataset, patch_loader
from medlearn.data.sources import load_pairs
from medlearn.data.splits import Split, make_split
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.errors import MedlearnError
from medlearn.planning.fingerprint import DatasetFingerprint, fingerprint, fingerprint_pairs
from medlearn.planning.plan import SegmentationPlan, make_plan

log = logging.getLogger("medlearn")


class SegmentationTrainRequest(TrainRequest[SegmenterSettings]):
    section = "segmentation"
    settings_type = SegmenterSettings
    training_defaults = SEGMENTATION_TRAINING_DEFAULTS


def train_segmenter(
    request: SegmentationTrainRequest,
    *,
    quiet: bool = False,
    show_plan: Callable[[SegmentationPlan, DatasetFingerprint], None] | None = None,
) -> TrainOutcome:
    """Fresh run on the pairs of ``request.data`` (validation: ``request.val_data`` or a held-out share);
    ``show_plan`` is called with the plan before training starts (the CLI prints it)."""

    settings = request.settings
    samples = load_pairs(request.data)
    seed = int(request.training.get("seed", 0))
    if request.val_data is not None:
        split = Split(train=samples, val=load_pairs(request.val_data))
    else:
        split = make_split(samples, val=settings.val_fraction, seed=seed)
    cropper = _cropper(settings)
    if cropper is None:
        fp = fingerprint(split.train, modality=settings.modality)
    else:  # the plan is made for the regions the segmenter will see
        pairs = ((str(sample.path), *load_pair(sample, cropper)) for sample in split.train)
        fp = fingerprint_pairs(pairs, modality=settings.modality)
    if len(fp.labels) < 2:
        raise MedlearnError("every training mask is empty (background only): there is nothing to learn", request.data)
    plan = make_plan(fp, settings.plan_overrides)
    settings = replace(settings, model_kwargs=recorded_model_kwargs(settings.model, settings.model_kwargs))
    if show_plan is not None:
        show_plan(plan, fp)
    cases = _prepare(split, plan, cropper)  # reads every pair: bad data fails here, before a run folder exists
    run = RunDir.create(request.out)
    split.to_csv(run.path / "split.csv")
    run.write_json("fingerprint.json", fp.to_dict())
    run.write_json("plan.json", plan.to_dict())
    training = {**request.training, "batch_size": plan.batch_size}
    run.write_config(
        {
            "medlearn_version": medlearn.__version__,
            "task": "segmentation",
            "data": {"source": request.data, "validation": request.val_data},
            "segmentation": settings.to_dict(),
            "plan": plan.to_dict(),
            "training": training,
        }
    )
    baseline = fit_and_store(run.path, split.train, plan.labels, seed=seed)  # the classical method to beat
    if baseline.model is not None:
        announce(f"classical baseline: {baseline.model.describe()}", quiet=quiet)
    return _train_and_report(run, settings, plan, training, cases, quiet=quiet, resume=False)


def resume_segmenter(run_dir: Path, *, quiet: bool = False) -> TrainOutcome:
    """Continue an interrupted run from its last checkpoint with its recorded plan, settings and split."""

    run = RunDir.open(run_dir)
    config, plan, settings = read_segmentation_run(run)
    split = Split.from_csv(run.path / "split.csv")
    cases = _prepare(split, plan, _cropper(settings))
    return _train_and_report(run, settings, plan, config["training"], cases, quiet=quiet, resume=True)


def _cropper(settings: SegmenterSettings) -> RegionCropper | None:
    if settings.crop_run is None:
        return None
    return RegionCropper.from_run(settings.crop_run, settings.crop_structure, settings.crop_margin_mm)


def _prepare(split: Split, plan: SegmentationPlan, cropper: RegionCropper | None) -> dict[str, list]:
    if not split.train:
        raise MedlearnError("no training cases left after holding out validation cases")
    return {"train": prepare_cases(split.train, plan, cropper), "val": prepare_cases(split.val, plan, cropper)}


def _train_and_report(
    run, settings: SegmenterSettings, plan: SegmentationPlan, training: dict, cases, *, quiet, resume
):

    config = TrainConfig.from_dict(training)
    log.info("segmentation: %d training, %d validation cases; plan %s", len(cases["train"]), len(cases["val"]), plan)
    seed_everything(config.seed)
    model = build_segmentation_model(settings.model, plan, settings.model_kwargs)
    dataset = PatchDataset(
        cases["train"],
        plan.patch_size,
        slice_axis=plan.slice_axis,
        foreground_fraction=settings.foreground_fraction,
        augment=settings.augment,
        seed=config.seed,
        fill=plan.padding_values,
    )
    train_loader = patch_loader(
        dataset, batch_size=plan.batch_size, batches_per_epoch=settings.batches_per_epoch, seed=config.seed
    )
    val_loader = [
        (torch.from_numpy(case.image)[None], torch.from_numpy(case.labels.astype(np.int64))[None])
        for case in cases["val"]
    ] or None
    task = SegmentationTask(plan, overlap=settings.val_overlap)
    result = Trainer(task, model, train_loader, val_loader, config, run, quiet=quiet).fit(resume=resume)
    report, metrics = report_after_training(run.path, result)
    return TrainOutcome(run.path, report, metrics)
