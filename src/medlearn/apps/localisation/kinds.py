"""Landmarks or boxes: which one an annotation holds or a run localises, and the ``localise`` commands that
follow from it.

Landmark files (.fcsv, .mrk.json, a points CSV) train a landmark model (``landmark-heatmap`` by default); label
masks and boxes CSVs train a box model (``box-slices``). The split is made here, the same way for both; evaluate
and predict read the run's kind from its config.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from medlearn.apps.common.request import TrainOutcome
from medlearn.apps.localisation.box_train import resume_box_localiser, train_box_localiser
from medlearn.apps.localisation.landmark_train import resume_landmark_localiser, train_landmark_localiser
from medlearn.apps.localisation.landmarks import load_localisation_samples
from medlearn.apps.localisation.request import LocalisationTrainRequest
from medlearn.apps.localisation.settings import BOX_MODELS, DEFAULT_BOX_MODEL, DEFAULT_MODEL, read_localisation_run
from medlearn.data.splits import Split, make_split
from medlearn.engine.rundir import RunDir
from medlearn.errors import MedlearnError
from medlearn.io.markups import BOX_COLUMNS
from medlearn.planning.fingerprint import DatasetFingerprint
from medlearn.planning.plan import SegmentationPlan

LANDMARK_SUFFIXES = (".fcsv", ".json")


def holds_boxes(annotation: Path) -> bool:
    """Whether an annotation file marks boxes (a mask, or a CSV with box columns) rather than landmarks."""
    name = annotation.name.lower()
    if name.endswith(LANDMARK_SUFFIXES):
        return False
    if not name.endswith(".csv"):
        return True  # an image: a label mask
    try:
        with open(annotation, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except OSError as error:
        raise MedlearnError(f"cannot read the annotation ({error.strerror})", annotation) from None
    box_columns = set(BOX_COLUMNS) - {"label"}
    return any(column.strip().lower() in box_columns for column in header)


def train_localiser(
    request: LocalisationTrainRequest,
    *,
    quiet: bool = False,
    show_plan: Callable[[SegmentationPlan, DatasetFingerprint], None] | None = None,
) -> TrainOutcome:
    """Fresh run on ``request.data`` (validation: ``request.val_data`` or a held-out share of the images)."""
    samples = load_localisation_samples(request.data)
    boxes = holds_boxes(Path(samples[0].target))
    model = request.settings.model or (DEFAULT_BOX_MODEL if boxes else DEFAULT_MODEL)
    if (model in BOX_MODELS) != boxes:
        kind = "boxes (masks or a boxes CSV)" if boxes else "landmarks"
        raise MedlearnError(f"the annotations hold {kind}, which model {model!r} does not localise", samples[0].target)
    request = replace(request, settings=replace(request.settings, model=model))
    seed = int(request.training.get("seed", 0))
    if request.val_data is not None:
        split = Split(train=samples, val=load_localisation_samples(request.val_data))
    else:
        split = make_split(samples, val=request.settings.val_fraction, seed=seed, stratify=False)
    if not split.train:
        raise MedlearnError("no training images left after holding out validation images", request.data)
    train = train_box_localiser if boxes else train_landmark_localiser
    return train(request, split, quiet=quiet, show_plan=show_plan)


def resume_localiser(run_dir: Path, *, quiet: bool = False) -> TrainOutcome:
    """Continue an interrupted landmark or box run."""
    _, _, settings = read_localisation_run(RunDir.open(run_dir))
    return (resume_box_localiser if settings.boxes else resume_landmark_localiser)(run_dir, quiet=quiet)


def is_box_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` localises boxes (an exported ``.onnx`` file is always a landmark network)."""
    if Path(run_dir).suffix.lower() == ".onnx":
        return False
    _, _, settings = read_localisation_run(RunDir.open(run_dir))
    return settings.boxes


def evaluate_localisation(run_dir: Path, data: str, *, json_path: Path | None = None, report_path: Path | None = None):
    """``localise evaluate``: landmark errors or box overlaps, whichever the run localises."""
    from medlearn.apps.localisation.box_evaluate import evaluate_box_run
    from medlearn.apps.localisation.landmark_evaluate import evaluate_run

    evaluate = evaluate_box_run if is_box_run(run_dir) else evaluate_run
    return evaluate(run_dir, data, json_path=json_path, report_path=report_path)


def predict_localisation(run_dir: Path, inputs: list[Path], out_dir: Path, *, strict: bool = False):
    """``localise predict``: landmark files or boxes CSVs, whichever the run localises."""
    from medlearn.apps.localisation.box_predict import predict_boxes
    from medlearn.apps.localisation.landmark_predict import predict_images

    predict = predict_boxes if is_box_run(run_dir) else predict_images
    return predict(run_dir, inputs, out_dir, strict=strict)
