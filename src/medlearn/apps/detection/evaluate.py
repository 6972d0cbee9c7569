"""Evaluate a detection run on annotated images: FROC, CPM, average precision and localisation error beside the
classical baseline (LoG blobs), per image and by object size, plus the HTML report.

Detections are mapped back to each image's own grid and matched there against the objects its annotation marks
(hit = inside the object's outline or within its radius; :mod:`medlearn.evaluation.detection`), so the figures
do not depend on the plan's resampling. The operating point shown in overlays, per-image counts and the
sensitivity by size is the score threshold at which the model makes one false positive per image on these data.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.common import run_evaluation
from medlearn.apps.detection.annotations import ImageObjects, load_detection_samples, read_objects
from medlearn.apps.detection.baseline import RunBaseline, run_baseline
from medlearn.apps.detection.cases import voxel_size_mm
from medlearn.apps.detection.model import Detections, TrainedDetector, detections_on_image
from medlearn.evaluation.baselines import compare_to_baseline
from medlearn.evaluation.detection import (
    FROC,
    ImageMatch,
    froc_curve,
    match_detections,
    summarize_detection,
)
from medlearn.io import load
from medlearn.io.image import MedicalImage, provenance_marks
from medlearn.planning.preparation import prepare_image

#: The false-positive rate whose score threshold is the report's operating point.
OPERATING_FP_RATE = 1.0
#: Objects per size bin below which the bins are the distinct radii (hybrid sets), else tertiles.
MAX_DISTINCT_RADII = 6


@dataclass
class ImageResult:
    """One evaluated image: its objects, the model's and the baseline's candidates and how they matched."""

    name: str
    image: MedicalImage
    objects: ImageObjects
    detections: Detections
    match: ImageMatch
    seconds: float
    baseline_detections: Detections | None = None
    baseline_match: ImageMatch | None = None
    marks: list[str] = field(default_factory=list)


def evaluate_images(
    detector: TrainedDetector, samples, *, baseline: RunBaseline | None = None, tta: bool | None = None
) -> list[ImageResult]:
    """Detect in each annotated image with the model and the baseline and match both against its objects."""
    results = []
    for sample in samples:
        image = load(sample.path)
        objects = read_objects(sample, image, default_radius_mm=detector.settings.point_radius_mm)
        targets = objects.targets(image.spacing)
        started = time.perf_counter()
        detections = detector.predict(image, tta=tta)
        seconds = time.perf_counter() - started
        result = ImageResult(
            name=sample.path.name,
            image=image,
            objects=objects,
            detections=detections,
            match=match_detections(detections.points, detections.scores, targets, name=sample.path.name),
            seconds=seconds,
            marks=provenance_marks(image.tags),
        )
        if baseline is not None and baseline.model is not None:
            result.baseline_detections = baseline_detections(baseline, detector, image)
            result.baseline_match = match_detections(
                result.baseline_detections.points, result.baseline_detections.scores, targets
            )
        results.append(result)
    return results


def baseline_detections(baseline: RunBaseline, detector: TrainedDetector, image: MedicalImage) -> Detections:
    """The blob detector's candidates on the plan's grid of ``image``, mapped to the image's own grid."""
    plan = detector.plan
    points, scores, radii_mm = baseline.model.detect(prepare_image(image, plan), plan.target_spacing)
    return detections_on_image(image, plan, points, scores, np.asarray(radii_mm) / voxel_size_mm(plan))


def operating_threshold(froc: FROC, rate: float = OPERATING_FP_RATE) -> float:
    """The lowest score threshold at which the curve stays within ``rate`` false positives per image."""
    within = froc.fp_per_image <= rate + 1e-12
    return float(np.min(froc.thresholds[within])) if within.any() else math.inf


def summarize(results: Sequence[ImageResult], baseline: RunBaseline | None = None) -> dict:
    """The JSON summary: the model's FROC figures, the baseline's, the comparison on CPM, per-image rows and
    sensitivity by object radius at the operating point."""
    matches = [r.match for r in results]
    summary = summarize_detection(matches)
    curve = froc_curve(matches)
    threshold = operating_threshold(curve)
    summary["operating_threshold"] = threshold if math.isfinite(threshold) else None
    summary["operating_fp_rate"] = OPERATING_FP_RATE
    summary["seconds_per_image"] = float(np.mean([r.seconds for r in results])) if results else None
    summary["distance_unit"] = "px" if any(r.image.tags.get("spacing_unknown") for r in results) else "mm"
    summary["hybrid"] = any("hybrid" in r.marks for r in results)
    summary["froc_curve"] = _curve_points(curve)
    summary["sensitivity_by_radius"] = sensitivity_by_radius(results, threshold)
    summary["per_image"] = [_image_row(r, threshold) for r in results]
    if baseline is not None and baseline.model is not None and all(r.baseline_match for r in results):
        baseline_matches = [r.baseline_match for r in results]
        baseline_summary = summarize_detection(baseline_matches)
        baseline_summary["froc_curve"] = _curve_points(froc_curve(baseline_matches))
        summary["baseline"] = {baseline.model.name: baseline_summary}
        summary["baseline_fitted"] = baseline.model.describe()
        comparison = compare_to_baseline(summary, summary["baseline"], "cpm")
        if comparison is not None:
            summary["baseline_comparison"] = comparison.to_dict("CPM")
    else:
        summary["baseline"] = {}
        summary["baseline_note"] = (baseline.note if baseline is not None else None) or "No classical baseline."
    return summary


def sensitivity_by_radius(results: Sequence[ImageResult], threshold: float) -> list[dict]:
    """Share of objects found at the operating threshold, per object-radius bin (the distinct radii when there
    are few, as in hybrid sets; tertiles otherwise)."""
    radii = np.concatenate([r.objects.radius_mm for r in results]) if results else np.zeros(0)
    scores = np.concatenate([r.match.target_scores for r in results]) if results else np.zeros(0)
    if not len(radii):
        return []
    found = np.nan_to_num(scores, nan=-np.inf) >= threshold
    distinct = np.unique(np.round(radii, 2))
    if len(distinct) <= MAX_DISTINCT_RADII:
        bins = [(value, value, np.isclose(np.round(radii, 2), value)) for value in distinct]
    else:
        edges = np.quantile(radii, [0, 1 / 3, 2 / 3, 1])
        tertile = np.clip(np.searchsorted(edges, radii, side="right") - 1, 0, 2)
        bins = [(edges[i], edges[i + 1], tertile == i) for i in range(3)]
    return [
        {
            "radius_mm_from": float(low),
            "radius_mm_to": float(high),
            "objects": int(inside.sum()),
            "sensitivity": float(found[inside].mean()) if inside.any() else None,
        }
        for low, high, inside in bins
    ]


class DetectionScorer:
    """How ``detect evaluate`` and the end of ``detect train`` score a run."""

    noun, items = "Detection", "image(s)"

    def __init__(self, run_dir: Path, *, tta: bool | None = None) -> None:
        self.run_dir, self.tta = Path(run_dir), tta
        self.detector = TrainedDetector.from_run_dir(run_dir)
        self.baseline = run_baseline(run_dir)

    def score(self, samples) -> tuple[list[ImageResult], dict]:
        results = evaluate_images(self.detector, samples, baseline=self.baseline, tta=self.tta)
        return results, summarize(results, self.baseline)

    def write_report(self, path: Path, results, summary, *, title, evaluated_on, history) -> Path:
        from medlearn.apps.detection.report import write_detection_report  # on first use: matplotlib

        fingerprint = None
        fingerprint_file = self.run_dir / "fingerprint.json"
        if fingerprint_file.is_file():
            fingerprint = json.loads(fingerprint_file.read_text(encoding="utf-8"))
        return write_detection_report(
            path,
            title=title,
            evaluated_on=evaluated_on,
            summary=summary,
            results=results,
            plan=self.detector.plan.to_dict(),
            settings=self.detector.settings.to_dict(),
            config=self.detector.config or {},
            history=history,
            fingerprint=fingerprint,
        )


def report_after_training(run_dir: Path, fit_result) -> tuple[Path | None, dict]:
    """Evaluate the best checkpoint on the run's validation images and write ``report.html``."""
    return run_evaluation.report_after_training(DetectionScorer(run_dir), run_dir, fit_result.history)


def evaluate_run(
    run_dir: Path, data: str, *, json_path: Path | None = None, report_path: Path | None = None, tta: bool | None = None
) -> tuple[dict, Path]:
    """``detect evaluate``: the run's best model and its baseline on the annotated images of ``data``."""
    scorer = DetectionScorer(run_dir, tta=tta)
    samples = load_detection_samples(data)
    return run_evaluation.evaluate_run_on(scorer, run_dir, samples, data, json_path=json_path, report_path=report_path)


def _curve_points(curve: FROC) -> list[dict]:
    return [
        {"fp_per_image": float(fp), "sensitivity": float(s) if s == s else None, "threshold": float(t)}
        for fp, s, t in zip(curve.fp_per_image, curve.sensitivity, curve.thresholds, strict=True)
    ]


def _image_row(result: ImageResult, threshold: float) -> dict:
    scores = np.nan_to_num(result.match.target_scores, nan=-np.inf)
    found = int((scores >= threshold).sum())
    row = {
        "image": result.name,
        "objects": len(result.objects),
        "found": found,
        "missed": len(result.objects) - found,
        "false_positives": int((result.match.false_positive_scores >= threshold).sum()),
        "seconds": round(result.seconds, 3),
    }
    if result.baseline_match is not None:
        baseline_scores = np.nan_to_num(result.baseline_match.target_scores, nan=-np.inf)
        row["baseline_found"] = int((baseline_scores >= threshold).sum())
    return row
