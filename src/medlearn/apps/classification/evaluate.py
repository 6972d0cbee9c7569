"""Evaluation of a trained classifier: metrics with intervals, calibration, Grad-CAM, the HTML report."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medlearn.apps.classification.model import TrainedClassifier, positive_index
from medlearn.apps.common.run_info import data_slug, environment_info, read_history
from medlearn.data.dedup import assign_groups, find_duplicate_groups
from medlearn.data.preload import Preloaded, preload
from medlearn.data.sources import load_samples
from medlearn.data.splits import Split
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines import compare_to_baseline
from medlearn.evaluation.baselines.classification import ClassificationBaseline, fit_classification_baseline
from medlearn.evaluation.calibration import expected_calibration_error, fit_temperature
from medlearn.evaluation.classification import classification_metrics, metrics_with_intervals, to_jsonable
from medlearn.evaluation.gradcam import gradcam_maps
from medlearn.utils.atomic import write_text_atomic

GRADCAM_PER_CATEGORY = 4
MONTAGE_SIZE = 16
BASELINE_FILE = "baseline.json"
#: The metric that decides whether the model beats its classical baseline. Balanced accuracy judges the same
#: decisions as accuracy (the most probable class) but is not fooled by class imbalance: always answering the
#: majority class scores 0.5, not the prevalence. AUC is reported beside it but ranks scores, not decisions.
PRIMARY_METRIC = "balanced_accuracy"
BASELINE_METRICS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1")

log = logging.getLogger("medlearn")


@dataclass
class EvaluationResult:
    metrics: dict
    report: Path


@dataclass
class BaselineChoice:
    """The fitted classical baseline of a run, or why there is none (shown in the JSON and the report)."""

    model: ClassificationBaseline | None
    note: str | None = None


def report_after_training(run_dir: Path, data, settings, fit_result) -> tuple[Path, dict]:
    """Calibrate on validation, evaluate on the test part (validation if there is none), write report.html."""
    classifier = TrainedClassifier.from_run_dir(run_dir)
    temperature = _fit_and_store_temperature(run_dir, classifier, data.parts["val"], data.labels("val"))
    classifier.temperature = temperature
    part = "test" if len(data.parts["test"]) else "val"
    positive = positive_index(data.classes, settings.positive)
    seed = int((classifier.config or {}).get("training", {}).get("seed", 0))
    baseline = _fit_and_store_baseline(run_dir, data.parts["train"], data.labels("train"), data.classes, seed)
    metrics = _evaluate_arrays(
        run_dir / "report.html",
        classifier,
        data.parts[part],
        data.labels(part),
        positive,
        title=f"Classification run {run_dir.name}",
        evaluated_on=f"the held-out {'test' if part == 'test' else 'validation'} split",
        data_summary=data.summary(),
        montage_source=data.parts["train"],
        history=list(fit_result.history),
        baseline=baseline,
    )
    metrics["evaluated_on"] = part
    write_text_atomic(run_dir / f"{part}_metrics.json", json.dumps(metrics, indent=2))
    return run_dir / "report.html", metrics


def evaluate_run(
    run_dir: Path,
    data: str,
    *,
    json_path: Path | None = None,
    positive: str | None = None,
    report_path: Path | None = None,
    strict: bool = False,
) -> EvaluationResult:
    """``classify evaluate``: metrics of a run's best model on labelled images (CSV, folder or 'br35h')."""

    run_dir = Path(run_dir)
    classifier = TrainedClassifier.from_run_dir(run_dir)
    samples = assign_groups(load_samples(data))  # duplicates within the test data are not independent cases
    unknown = sorted({str(s.label) for s in samples if s.label not in classifier.classes})
    if unknown:
        raise MedlearnError(f"labels {unknown} are not among the model's classes {classifier.classes}", data)
    loaded = preload(samples, classifier.preprocessing, strict=strict)
    overlap = training_overlap(run_dir, list(loaded.samples))
    index = {c: i for i, c in enumerate(classifier.classes)}
    labels = np.array([index[s.label] for s in loaded.samples], dtype=np.int64)
    positive_name = positive if positive is not None else classifier.config["classification"].get("positive")
    report_path = Path(report_path) if report_path else run_dir / f"evaluation-{data_slug(data)}.html"
    history = read_history(run_dir)
    metrics = _evaluate_arrays(
        report_path,
        classifier,
        loaded,
        labels,
        positive_index(classifier.classes, positive_name),
        title=f"Evaluation of {run_dir.name} on {Path(data).name}",
        evaluated_on=f"{len(loaded)} labelled images from {data}",
        data_summary={
            "classes": classifier.classes,
            "counts": {"evaluated": {c: int((labels == i).sum()) for i, c in enumerate(classifier.classes)}},
            "skipped": [{"path": p, "reason": r} for p, r in loaded.skipped],
        },
        montage_source=loaded,
        history=history,
        baseline=_run_baseline(run_dir, classifier),
        caveats=overlap_caveats(overlap),
    )
    metrics["overlap_with_training"] = overlap
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(metrics, indent=2))
    return EvaluationResult(metrics, report_path)


def training_overlap(run_dir: Path, samples: list) -> dict:
    """How many evaluated images the run has seen: the same file in its training or validation split, or a
    near-duplicate of one (perceptual hash). A test set that overlaps them overstates the model's performance."""
    split_file = Path(run_dir) / "split.csv"
    if not split_file.is_file():
        return {"checked": False}
    split = Split.from_csv(split_file)
    seen = [*split.train, *split.val]
    seen_paths = {Path(s.path).resolve() for s in seen}
    same_file = sum(Path(s.path).resolve() in seen_paths for s in samples)
    report = find_duplicate_groups([*seen, *samples])
    in_seen = set(range(len(seen)))
    near = {
        index - len(seen)
        for group in report.groups
        if any(member in in_seen for member in group)
        for index in group
        if index >= len(seen)
    }
    return {"checked": True, "same_file": same_file, "near_duplicate_of_training": len(near), "images": len(samples)}


def overlap_caveats(overlap: dict) -> list[str]:
    """The sentence the report and the console give when the evaluated images overlap what the run saw."""
    if not overlap.get("checked"):
        return ["The evaluated images could not be compared with the run's training split (no split.csv)."]
    count = overlap["near_duplicate_of_training"]
    if not count and not overlap["same_file"]:
        return []
    return [
        f"{count} of the {overlap['images']} evaluated images are (near-)copies of images the model trained or was "
        f"validated on ({overlap['same_file']} the very same file): these figures overstate its performance on "
        "unseen images."
    ]


def _evaluate_arrays(
    report_path: Path,
    classifier: TrainedClassifier,
    loaded: Preloaded,
    labels: np.ndarray,
    positive: int,
    *,
    title: str,
    evaluated_on: str,
    data_summary: dict,
    montage_source: Preloaded,
    history: list[dict],
    baseline: BaselineChoice,
    caveats: list[str] | None = None,
) -> dict:
    from medlearn.apps.classification.report import write_classification_report  # loads matplotlib

    logits = classifier.logits(loaded.arrays)
    raw_probs = _softmax(logits)
    probs = _softmax(logits / classifier.temperature)
    groups = [s.group_key for s in loaded.samples]  # near-duplicates and patients resampled as one unit
    result: dict = to_jsonable(
        metrics_with_intervals(labels, probs, positive=positive, n_boot=1000, seed=0, groups=groups)
    )
    result["positive_class"] = classifier.classes[positive]
    result["ece_uncalibrated"] = float(expected_calibration_error(raw_probs, labels))
    result["ece"] = float(expected_calibration_error(probs, labels))
    result["temperature"] = float(classifier.temperature)
    result["per_case"] = [
        {"path": str(s.path), "label": classifier.classes[y], "prob_positive": float(p[positive])}
        for s, y, p in zip(loaded.samples, labels, probs, strict=False)
    ]
    result.update(_baseline_results(baseline, loaded.arrays, labels, positive, result))
    config = classifier.config
    write_classification_report(
        report_path,
        title=title,
        summary={"evaluated_on": evaluated_on, "model": config["classification"]["model"], "caveats": caveats or []},
        config=config,
        environment=environment_info(),
        data_summary=data_summary,
        montage=_montage(montage_source, classifier.classes),
        history=history,
        monitor=config["classification"].get("monitor", "loss"),
        monitor_mode="min" if config["classification"].get("monitor", "loss") == "loss" else "max",
        class_names=classifier.classes,
        positive=positive,
        y_true=labels,
        probs=probs,
        metrics=result,
        calibration={
            "ece_before": result["ece_uncalibrated"],
            "ece_after": result["ece"],
            "temperature": classifier.temperature,
            "probs_uncalibrated": raw_probs,
        },
        gradcam=_gradcam_examples(classifier, loaded, labels, probs, positive),
    )
    return result


def _baseline_results(
    baseline: BaselineChoice, arrays: np.ndarray, labels: np.ndarray, positive: int, model_metrics: dict
) -> dict:
    """``baseline`` ({name: {metric: value}}, scored on the model's own test images) and ``baseline_comparison``
    (the model against it on :data:`PRIMARY_METRIC`, with the plain-words sentence); a note when there is none."""

    out: dict = {"baseline": {}, "baseline_comparison": None}
    if baseline.note:
        out["baseline_note"] = baseline.note
    if baseline.model is None:
        return out
    point = classification_metrics(labels, baseline.model.probabilities(arrays), positive)
    out["baseline"] = {baseline.model.name: to_jsonable({name: point[name] for name in BASELINE_METRICS})}
    comparison = compare_to_baseline(model_metrics, out["baseline"], PRIMARY_METRIC)
    if comparison is not None:
        out["baseline_comparison"] = comparison.to_dict("balanced accuracy")
    return out


def _fit_and_store_baseline(
    run_dir: Path, train: Preloaded, labels: np.ndarray, classes: list[str], seed: int
) -> BaselineChoice:
    """Fit the classical baseline on the training arrays and keep it as RUN_DIR/baseline.json (JSON, no pickle).

    A baseline that cannot be fitted or stored never costs the run its report: the reason becomes a note."""

    try:
        model = fit_classification_baseline(train.arrays, labels, classes, seed=seed)
    except MedlearnError as error:
        log.warning("no classical baseline: %s", error)
        return BaselineChoice(None, f"No classical baseline could be fitted: {error.problem}")
    try:
        model.save(run_dir / BASELINE_FILE)
    except OSError as error:
        log.warning("the classical baseline could not be saved in %s: %s", run_dir, error)
        return BaselineChoice(model, f"The classical baseline was fitted but could not be saved ({error}).")
    return BaselineChoice(model)


def _run_baseline(run_dir: Path, classifier: TrainedClassifier) -> BaselineChoice:
    """The run's stored baseline; for a run made before baselines existed, one fitted now on the run's
    training part (``split.csv``, decoded with the run's preprocessing) and stored for the next evaluation."""
    path = run_dir / BASELINE_FILE
    if path.is_file():
        model = ClassificationBaseline.load(path)
        if model.classes != list(classifier.classes):
            raise MedlearnError(
                f"the baseline's classes {model.classes} are not the model's {classifier.classes}; "
                "delete the file to fit it again",
                path,
            )
        return BaselineChoice(model)
    try:
        loaded, listed = _training_part(run_dir, classifier.classes, classifier.preprocessing)
    except MedlearnError as error:
        return _no_baseline(f"the run has no {BASELINE_FILE} and none could be fitted: {error}")
    index = {name: i for i, name in enumerate(classifier.classes)}
    labels = np.array([index[s.label] for s in loaded.samples], dtype=np.int64)
    seed = int((classifier.config or {}).get("training", {}).get("seed", 0))
    choice = _fit_and_store_baseline(run_dir, loaded, labels, list(classifier.classes), seed)
    if choice.model is not None and choice.note is None:
        choice.note = (
            f"The run had no {BASELINE_FILE}: the classical baseline was fitted now on {len(loaded):,} of the "
            f"{listed:,} training images listed in split.csv and saved for later evaluations."
        )
    return choice


def _training_part(run_dir: Path, classes: list[str], preprocessing) -> tuple[Preloaded, int]:
    """The readable training images of a run's ``split.csv`` (of the model's classes), preprocessed as in training,
    and how many were listed."""

    split_file = run_dir / "split.csv"
    if not split_file.is_file():
        raise MedlearnError("the list of training images is missing", split_file)
    train = [s for s in Split.from_csv(split_file).train if s.label in classes]
    if not train:
        raise MedlearnError("it lists no training images of the model's classes", split_file)
    return preload(train, preprocessing, description="Decoding the run's training images for the baseline"), len(train)


def _no_baseline(reason: str) -> BaselineChoice:
    log.warning("no classical baseline: %s", reason)
    return BaselineChoice(None, f"No classical baseline: {reason}.")


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)), dim=1).numpy()


def _fit_and_store_temperature(run_dir: Path, classifier: TrainedClassifier, val: Preloaded, labels) -> float:
    """Temperature scaling on the validation split (Guo et al. 2017); stored for evaluate and predict."""

    temperature = float(fit_temperature(classifier.logits(val.arrays), labels))
    write_text_atomic(run_dir / "calibration.yaml", f"temperature: {temperature:.6f}\nfitted_on: validation\n")
    return temperature


def _montage(source: Preloaded, classes: list[str]) -> list[tuple[np.ndarray, str]]:
    """A few images of each class, for the data section of the report."""
    per_class = max(1, MONTAGE_SIZE // len(classes))
    picked: list[tuple[np.ndarray, str]] = []
    for name in classes:
        members = [i for i, s in enumerate(source.samples) if s.label == name][:per_class]
        picked += [(_display(source.arrays[i]), name) for i in members]
    return picked


def _display(array: np.ndarray) -> np.ndarray:
    """First channel scaled to [0, 1] for display (inputs may be z-scored)."""
    image = np.asarray(array[0], dtype=np.float32)
    low, high = np.percentile(image, [0.5, 99.5])
    return np.clip((image - low) / max(high - low, 1e-6), 0, 1)


def _gradcam_examples(classifier, loaded: Preloaded, labels, probs, positive: int) -> dict:
    """Grad-CAM overlays of up to a few confident cases of each outcome (TP, FP, TN, FN)."""

    predicted_positive = probs.argmax(1) == positive
    actual_positive = labels == positive
    categories = {
        "true positive": predicted_positive & actual_positive,
        "false positive": predicted_positive & ~actual_positive,
        "true negative": ~predicted_positive & ~actual_positive,
        "false negative": ~predicted_positive & actual_positive,
    }
    examples: dict[str, list] = {}
    for name, mask in categories.items():
        index = np.flatnonzero(mask)
        confidence = probs[index].max(1)
        chosen = index[np.argsort(-confidence)][:GRADCAM_PER_CATEGORY]
        if len(chosen) == 0:
            examples[name] = []
            continue
        images = torch.from_numpy(np.asarray(loaded.arrays[chosen], dtype=np.float32))
        cams = gradcam_maps(classifier.model, images, class_index=None)  # the predicted class, as the report says
        examples[name] = [
            (
                _display(loaded.arrays[i]),
                cam,
                f"{Path(loaded.samples[i].path).name}: true {classifier.classes[labels[i]]}, "
                f"p({classifier.classes[positive]})={probs[i, positive]:.2f}",
            )
            for i, cam in zip(chosen, cams, strict=False)
        ]
    return examples
