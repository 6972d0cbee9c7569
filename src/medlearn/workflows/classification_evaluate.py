"""Evaluation of a trained classifier: metrics with intervals, calibration, Grad-CAM, the HTML report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medlearn.data.preload import Preloaded, preload
from medlearn.errors import MedlearnError
from medlearn.utils.atomic import write_text_atomic
from medlearn.workflows.classifier import TrainedClassifier, positive_index
from medlearn.workflows.run_info import data_slug, environment_info, read_history

GRADCAM_PER_CATEGORY = 4
MONTAGE_SIZE = 16


@dataclass
class EvaluationResult:
    metrics: dict
    report: Path


def report_after_training(run_dir: Path, data, settings, fit_result) -> tuple[Path, dict]:
    """Calibrate on validation, evaluate on the test part (validation if there is none), write report.html."""
    classifier = TrainedClassifier.from_run_dir(run_dir)
    temperature = _fit_and_store_temperature(run_dir, classifier, data.parts["val"], data.labels("val"))
    classifier.temperature = temperature
    part = "test" if len(data.parts["test"]) else "val"
    positive = positive_index(data.classes, settings.positive)
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
    from medlearn.data.sources import load_samples

    run_dir = Path(run_dir)
    classifier = TrainedClassifier.from_run_dir(run_dir)
    samples = load_samples(data)
    unknown = sorted({str(s.label) for s in samples if s.label not in classifier.classes})
    if unknown:
        raise MedlearnError(f"labels {unknown} are not among the model's classes {classifier.classes}", data)
    loaded = preload(samples, classifier.preprocessing, strict=strict)
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
    )
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(metrics, indent=2))
    return EvaluationResult(metrics, report_path)


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
) -> dict:
    from medlearn.evaluation.calibration import expected_calibration_error
    from medlearn.evaluation.classification import metrics_with_intervals, to_jsonable
    from medlearn.report.classification import write_classification_report

    logits = classifier.logits(loaded.arrays)
    raw_probs = _softmax(logits)
    probs = _softmax(logits / classifier.temperature)
    result: dict = to_jsonable(metrics_with_intervals(labels, probs, positive=positive, n_boot=1000, seed=0))
    result["positive_class"] = classifier.classes[positive]
    result["ece_uncalibrated"] = float(expected_calibration_error(raw_probs, labels))
    result["ece"] = float(expected_calibration_error(probs, labels))
    result["temperature"] = float(classifier.temperature)
    result["per_case"] = [
        {"path": str(s.path), "label": classifier.classes[y], "prob_positive": float(p[positive])}
        for s, y, p in zip(loaded.samples, labels, probs, strict=False)
    ]
    config = classifier.config
    write_classification_report(
        report_path,
        title=title,
        summary={"evaluated_on": evaluated_on, "model": config["classification"]["model"]},
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


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)), dim=1).numpy()


def _fit_and_store_temperature(run_dir: Path, classifier: TrainedClassifier, val: Preloaded, labels) -> float:
    """Temperature scaling on the validation split (Guo et al. 2017); stored for evaluate and predict."""
    from medlearn.evaluation.calibration import fit_temperature

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
    from medlearn.evaluation.gradcam import gradcam_maps

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
