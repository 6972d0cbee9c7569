"""Run a landmark-localisation training end to end, fresh or resumed: landmarks -> fingerprint -> plan -> train ->
report, with the template-matching baseline fitted beside the network.

The fingerprint sees the tissue around the landmarks (5 mm balls) as foreground, so the plan's normalisation is
chosen for it; prediction applies the recorded plan again. Patches are never mirrored (a mirrored brain swaps
its left and right landmarks); rotation and scaling move the landmarks with the image.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import medlearn
from medlearn.apps.common.request import TrainOutcome
from medlearn.apps.common.run_info import announce
from medlearn.apps.localisation.landmark_baseline import fit_and_store
from medlearn.apps.localisation.landmark_cases import (
    LandmarkHeatmaps,
    LocalisationCase,
    landmark_mask,
    prepare_localisation_case,
    sigma_voxels,
)
from medlearn.apps.localisation.landmark_evaluate import report_after_training
from medlearn.apps.localisation.landmark_task import LocalisationTask
from medlearn.apps.localisation.landmarks import ImageLandmarks, landmark_names, read_landmarks
from medlearn.apps.localisation.request import LocalisationTrainRequest
from medlearn.apps.localisation.settings import (
    LocaliserSettings,
    build_localisation_model,
    read_localisation_run,
    recorded_model_kwargs,
)
from medlearn.data.patches import PatchDataset, patch_loader
from medlearn.data.splits import Split
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.io.image import MedicalImage, provenance_marks
from medlearn.planning.fingerprint import DatasetFingerprint, fingerprint_pairs
from medlearn.planning.plan import SegmentationPlan, make_plan

log = logging.getLogger("medlearn")

#: Radius of the balls around landmarks that the fingerprint takes as foreground.
FINGERPRINT_RADIUS_MM = 5.0


def train_landmark_localiser(
    request: LocalisationTrainRequest,
    split: Split,
    *,
    quiet: bool = False,
    show_plan: Callable[[SegmentationPlan, DatasetFingerprint], None] | None = None,
) -> TrainOutcome:
    """Fresh landmark run on ``split`` (the landmark files of ``request.data``)."""
    settings = request.settings
    train = [read_landmarks(sample) for sample in split.train]
    val = [read_landmarks(sample) for sample in split.val]
    names = landmark_names(train, request.data)
    fp = fingerprint_pairs(
        ((str(item.sample.path), item.image, _mask_image(item, names)) for item in train),
        modality=settings.modality,
    )
    plan = make_plan(fp, settings.plan_overrides)
    settings = replace(
        settings, landmarks=names, model_kwargs=recorded_model_kwargs(settings.model, settings.model_kwargs)
    )
    if show_plan is not None:
        show_plan(plan, fp)
    cases = _prepare(train, val, names, plan, settings)  # every file is read and checked before a run exists
    run = RunDir.create(request.out)
    split.to_csv(run.path / "split.csv")
    run.write_json("fingerprint.json", fp.to_dict())
    run.write_json("plan.json", plan.to_dict())
    training = {**request.training, "batch_size": plan.batch_size}
    run.write_config(
        {
            "medlearn_version": medlearn.__version__,
            "task": "localisation",
            "data": {"source": request.data, "validation": request.val_data},
            # provenance of the training images ("deformed": one template under synthetic deformations)
            "training_marks": sorted({mark for item in train for mark in provenance_marks(item.image.tags)}),
            "localisation": settings.to_dict(),
            "plan": plan.to_dict(),
            "training": training,
        }
    )
    baseline = fit_and_store(run.path, cases["train"], train, names, plan)
    if baseline.model is not None:
        announce(f"classical baseline: {baseline.model.describe()}", quiet=quiet)
    return _train_and_report(run, settings, plan, training, cases, quiet=quiet, resume=False)


def resume_landmark_localiser(run_dir: Path, *, quiet: bool = False) -> TrainOutcome:
    """Continue an interrupted run from its last checkpoint with its recorded plan, settings and split."""
    run = RunDir.open(run_dir)
    config, plan, settings = read_localisation_run(run)
    split = Split.from_csv(run.path / "split.csv")
    train = [read_landmarks(sample) for sample in split.train]
    val = [read_landmarks(sample) for sample in split.val]
    cases = _prepare(train, val, settings.landmarks, plan, settings)
    return _train_and_report(run, settings, plan, config["training"], cases, quiet=quiet, resume=True)


def _mask_image(item: ImageLandmarks, names: list[str]) -> MedicalImage:
    mask = landmark_mask(item.image, item.array(names), FINGERPRINT_RADIUS_MM)
    image = item.image
    return MedicalImage(mask[None], image.spacing, image.origin, image.direction, image.affine, source=image.source)


def _prepare(
    train: list[ImageLandmarks], val: list[ImageLandmarks], names, plan: SegmentationPlan, settings: LocaliserSettings
) -> dict[str, list[LocalisationCase]]:
    sigma = sigma_voxels(plan, settings.sigma_mm)
    return {
        "train": [prepare_localisation_case(item, names, plan, sigma) for item in train],
        "val": [prepare_localisation_case(item, names, plan, sigma) for item in val],
    }


def _train_and_report(
    run, settings: LocaliserSettings, plan: SegmentationPlan, training: dict, cases, *, quiet: bool, resume: bool
) -> TrainOutcome:
    config = TrainConfig.from_dict(training)
    log.info("localisation: %d training, %d validation images; plan %s", len(cases["train"]), len(cases["val"]), plan)
    seed_everything(config.seed)
    model = build_localisation_model(settings, plan)
    heads = LandmarkHeatmaps(len(settings.landmarks), sigma_voxels(plan, settings.sigma_mm))
    dataset = PatchDataset(
        [item.case for item in cases["train"]],
        plan.patch_size,
        foreground_fraction=settings.foreground_fraction,
        augment=settings.augment,
        mirror=False,
        seed=config.seed,
        to_tensors=heads.batch_item,
        fill=plan.padding_values,
    )
    train_loader = patch_loader(
        dataset, batch_size=plan.batch_size, batches_per_epoch=settings.batches_per_epoch, seed=config.seed
    )
    val_loader = [
        (torch.from_numpy(item.case.image)[None], torch.tensor(index)) for index, item in enumerate(cases["val"])
    ] or None
    task = LocalisationTask(
        heads,
        plan.window(settings.val_overlap),
        [np.asarray(item.landmarks) for item in cases["val"]],
        tuple(plan.target_spacing),
    )
    result = Trainer(task, model, train_loader, val_loader, config, run, quiet=quiet).fit(resume=resume)
    report, metrics = report_after_training(run.path, result)
    return TrainOutcome(run.path, report, metrics)
