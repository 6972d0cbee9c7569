"""Train a box localiser (loc-slices): boxes -> fingerprint -> plan (spacing, normalisation) -> slices of every
prepared volume along the three axes -> three slice classifiers -> report, with the threshold-box baseline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

import medlearn
from medlearn.apps.common.request import TrainOutcome
from medlearn.apps.common.run_info import announce
from medlearn.apps.localisation.box_baseline import fit_and_store
from medlearn.apps.localisation.box_evaluate import report_after_training
from medlearn.apps.localisation.box_task import BoxSliceTask
from medlearn.apps.localisation.boxes import (
    BoxCase,
    ImageBoxes,
    SliceDataset,
    prepare_box_case,
    read_boxes,
    structure_names,
)
from medlearn.apps.localisation.request import LocalisationTrainRequest
from medlearn.apps.localisation.settings import build_localisation_model, read_localisation_run, recorded_model_kwargs
from medlearn.data.splits import Split
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.io.image import MedicalImage, provenance_marks
from medlearn.planning.fingerprint import DatasetFingerprint, fingerprint_pairs
from medlearn.planning.plan import SegmentationPlan, make_plan

log = logging.getLogger("medlearn")

#: Slices per training batch (2D classification of small slices).
SLICE_BATCH = 32


def train_box_localiser(
    request: LocalisationTrainRequest,
    split: Split,
    *,
    quiet: bool = False,
    show_plan: Callable[[SegmentationPlan, DatasetFingerprint], None] | None = None,
) -> TrainOutcome:
    """Fresh box run on ``split`` (``request.settings.model`` localises boxes)."""
    settings = request.settings
    train = [read_boxes(sample) for sample in split.train]
    val = [read_boxes(sample) for sample in split.val]
    names = structure_names(train, request.data)
    fp = fingerprint_pairs(
        ((str(item.sample.path), item.image, _label_image(item, names)) for item in train), modality=settings.modality
    )
    plan = make_plan(fp, settings.plan_overrides)
    settings = replace(
        settings, structures=names, model_kwargs=recorded_model_kwargs(settings.model, settings.model_kwargs)
    )
    if show_plan is not None:
        show_plan(plan, fp)
    cases = {
        part: [prepare_box_case(item, names, plan, settings.slice_size) for item in items]
        for part, items in (("train", train), ("val", val))
    }
    run = RunDir.create(request.out)
    split.to_csv(run.path / "split.csv")
    run.write_json("fingerprint.json", fp.to_dict())
    run.write_json("plan.json", plan.to_dict())
    training = {**request.training, "batch_size": SLICE_BATCH}
    run.write_config(
        {
            "medlearn_version": medlearn.__version__,
            "task": "localisation",
            "data": {"source": request.data, "validation": request.val_data},
            "training_marks": sorted({mark for item in train for mark in provenance_marks(item.image.tags)}),
            "localisation": settings.to_dict(),
            "plan": plan.to_dict(),
            "training": training,
        }
    )
    baseline = fit_and_store(run.path, train, names)
    if baseline.threshold is not None:
        announce(f"classical baseline: {baseline.describe()}", quiet=quiet)
    run_dir, report, metrics = _train_and_report(run, settings, plan, training, cases, quiet=quiet, resume=False)
    return TrainOutcome(run_dir, report, metrics)


def resume_box_localiser(run_dir: Path, *, quiet: bool = False) -> TrainOutcome:
    run = RunDir.open(run_dir)
    config, plan, settings = read_localisation_run(run)
    split = Split.from_csv(run.path / "split.csv")
    cases = {
        part: [
            prepare_box_case(read_boxes(sample), settings.structures, plan, settings.slice_size) for sample in samples
        ]
        for part, samples in (("train", split.train), ("val", split.val))
    }
    result = _train_and_report(run, settings, plan, config["training"], cases, quiet=quiet, resume=True)
    return TrainOutcome(*result)


def _label_image(item: ImageBoxes, names) -> MedicalImage:
    image = item.image
    mask = item.label_map(names)[None]
    return MedicalImage(mask, image.spacing, image.origin, image.direction, image.affine, source=image.source)


def _train_and_report(
    run, settings, plan: SegmentationPlan, training: dict, cases: dict[str, list[BoxCase]], *, quiet, resume
):
    config = TrainConfig.from_dict(training)
    log.info("box localisation: %d training, %d validation volumes", len(cases["train"]), len(cases["val"]))
    seed_everything(config.seed)
    model = build_localisation_model(settings, plan)
    dataset = SliceDataset(cases["train"], augment=settings.augment, seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = RandomSampler(
        dataset, replacement=True, num_samples=SLICE_BATCH * settings.batches_per_epoch, generator=generator
    )
    loader = DataLoader(dataset, batch_size=SLICE_BATCH, sampler=sampler, drop_last=True)
    val_loader = [torch.tensor(index) for index in range(len(cases["val"]))] or None
    task = BoxSliceTask(cases["val"], plan.target_spacing)
    result = Trainer(task, model, loader, val_loader, config, run, quiet=quiet).fit(resume=resume)
    report, metrics = report_after_training(run.path, result)
    return run.path, report, metrics
