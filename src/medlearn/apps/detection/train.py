"""Run a detection training end to end, fresh or resumed: annotations -> fingerprint -> plan -> train -> report.

The fingerprint is taken of the training images with their objects as foreground (outlines, or balls of the
annotated radius around points), so the plan's normalisation is chosen for what separates objects from
background, as segmentation's is for its structures; the plan is recorded and prediction applies it again.
The classical baseline (LoG blobs, scale and polarity tuned on the training images) is fitted before the
network trains and stored beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

import medlearn
from medlearn.apps.common.request import TrainOutcome, TrainRequest
from medlearn.apps.common.run_info import announce
from medlearn.apps.detection.annotations import load_detection_samples
from medlearn.apps.detection.baseline import fit_and_store
from medlearn.apps.detection.cases import AnnotatedImage, DetectionCase, prepare_detection_case, read_annotated
from medlearn.apps.detection.evaluate import report_after_training
from medlearn.apps.detection.heads import head_for
from medlearn.apps.detection.settings import (
    DETECTION_TRAINING_DEFAULTS,
    DetectorSettings,
    build_detection_model,
    read_detection_run,
    recorded_model_kwargs,
)
from medlearn.apps.detection.task import DetectionTask
from medlearn.data.patches import PatchDataset, patch_loader
from medlearn.data.splits import Split, make_split
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.errors import MedlearnError
from medlearn.planning.fingerprint import DatasetFingerprint, fingerprint_pairs
from medlearn.planning.plan import SegmentationPlan, make_plan

log = logging.getLogger("medlearn")


class DetectionTrainRequest(TrainRequest[DetectorSettings]):
    section = "detection"
    settings_type = DetectorSettings
    training_defaults = DETECTION_TRAINING_DEFAULTS


def train_detector(
    request: DetectionTrainRequest,
    *,
    quiet: bool = False,
    show_plan: Callable[[SegmentationPlan, DatasetFingerprint], None] | None = None,
) -> TrainOutcome:
    """Fresh run on the annotated images of ``request.data`` (validation: ``request.val_data`` or a held-out
    share of the images, by group); ``show_plan`` is called with the plan before training starts."""
    settings = request.settings
    samples = load_detection_samples(request.data)
    seed = int(request.training.get("seed", 0))
    if request.val_data is not None:
        split = Split(train=samples, val=load_detection_samples(request.val_data))
    else:
        split = make_split(samples, val=settings.val_fraction, seed=seed, stratify=False)
    if not split.train:
        raise MedlearnError("no training images left after holding out validation images", request.data)
    train = read_annotated(split.train, default_radius_mm=settings.point_radius_mm)
    val = read_annotated(split.val, default_radius_mm=settings.point_radius_mm)
    if not any(len(item.objects) for item in train):
        raise MedlearnError("no training image has an object: there is nothing to learn", request.data)
    fp = fingerprint_pairs(
        ((str(item.sample.path), item.image, item.objects.mask(item.image)) for item in train),
        modality=settings.modality,
    )
    plan = make_plan(fp, settings.plan_overrides)
    settings = replace(settings, model_kwargs=recorded_model_kwargs(settings.model, settings.model_kwargs))
    if show_plan is not None:
        show_plan(plan, fp)
    cases = _prepare(train, val, plan)  # every image and annotation is read and checked before a run exists
    run = RunDir.create(request.out)
    split.to_csv(run.path / "split.csv")
    run.write_json("fingerprint.json", fp.to_dict())
    run.write_json("plan.json", plan.to_dict())
    training = {**request.training, "batch_size": plan.batch_size}
    run.write_config(
        {
            "medlearn_version": medlearn.__version__,
            "task": "detection",
            "data": {"source": request.data, "validation": request.val_data},
            "detection": settings.to_dict(),
            "plan": plan.to_dict(),
            "training": training,
        }
    )
    baseline = fit_and_store(run.path, cases["train"], settings.max_candidates)  # the classical method to beat
    if baseline.model is not None:
        announce(f"classical baseline: {baseline.model.describe()}", quiet=quiet)
    return _train_and_report(run, settings, plan, training, cases, quiet=quiet, resume=False)


def resume_detector(run_dir: Path, *, quiet: bool = False) -> TrainOutcome:
    """Continue an interrupted run from its last checkpoint with its recorded plan, settings and split."""
    run = RunDir.open(run_dir)
    config, plan, settings = read_detection_run(run)
    split = Split.from_csv(run.path / "split.csv")
    train = read_annotated(split.train, default_radius_mm=settings.point_radius_mm)
    val = read_annotated(split.val, default_radius_mm=settings.point_radius_mm)
    cases = _prepare(train, val, plan)
    return _train_and_report(run, settings, plan, config["training"], cases, quiet=quiet, resume=True)


def _prepare(
    train: list[AnnotatedImage], val: list[AnnotatedImage], plan: SegmentationPlan
) -> dict[str, list[DetectionCase]]:
    return {
        "train": [prepare_detection_case(item, plan) for item in train],
        "val": [prepare_detection_case(item, plan) for item in val],
    }


def _train_and_report(
    run, settings: DetectorSettings, plan: SegmentationPlan, training: dict, cases, *, quiet: bool, resume: bool
) -> TrainOutcome:
    config = TrainConfig.from_dict(training)
    log.info("detection: %d training, %d validation images; plan %s", len(cases["train"]), len(cases["val"]), plan)
    seed_everything(config.seed)
    model = build_detection_model(settings.model, plan, settings.model_kwargs)
    head = head_for(model)
    dataset = PatchDataset(
        [item.case for item in cases["train"]],
        plan.patch_size,
        foreground_fraction=settings.foreground_fraction,
        augment=settings.augment,
        seed=config.seed,
        to_tensors=head.batch_item,
        fill=plan.padding_values,
    )
    train_loader = patch_loader(
        dataset, batch_size=plan.batch_size, batches_per_epoch=settings.batches_per_epoch, seed=config.seed
    )
    val_loader = [
        (torch.from_numpy(item.case.image)[None], torch.tensor(index)) for index, item in enumerate(cases["val"])
    ] or None
    task = DetectionTask(
        head,
        plan.window(settings.val_overlap),
        [item.targets for item in cases["val"]],
        max_candidates=settings.max_candidates,
    )
    result = Trainer(task, model, train_loader, val_loader, config, run, quiet=quiet).fit(resume=resume)
    report, metrics = report_after_training(run.path, result)
    return TrainOutcome(run.path, report, metrics)
