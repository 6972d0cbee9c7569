"""Evaluate a localisation run on images with landmark files: radial error (mm) per landmark and image, the
share within 2 and 4 mm, beside the template-matching baseline, plus the HTML report.

Errors are distances in world millimetres between the predicted and the annotated landmark, so they do not
depend on the plan's grid. The mean error's 95% interval resamples whole images (the landmarks of one image
share its deformation and contrast).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.apps.common import run_evaluation
from medlearn.apps.localisation.landmark_baseline import RunBaseline, run_baseline
from medlearn.apps.localisation.landmark_model import Landmarks, TrainedLocaliser, landmarks_on_image
from medlearn.apps.localisation.landmarks import ImageLandmarks, load_localisation_samples, read_landmarks
from medlearn.evaluation.baselines import compare_to_baseline
from medlearn.evaluation.classification import to_jsonable
from medlearn.io.geometry import voxel_to_world
from medlearn.io.image import provenance_marks
from medlearn.planning.preparation import planned_affine, prepare_image

SUCCESS_RADII_MM = (2.0, 4.0)
BOOTSTRAP = 1000


@dataclass
class ImageResult:
    truth: ImageLandmarks
    found: Landmarks
    errors_mm: np.ndarray  # (K,) NaN where the image does not mark the landmark
    seconds: float
    baseline: Landmarks | None = None
    baseline_errors_mm: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.truth.sample.path.name


def radial_errors(truth: ImageLandmarks, found: Landmarks) -> np.ndarray:
    """World distance (mm) of each found landmark from its annotation (NaN where there is none)."""
    world = voxel_to_world(truth.image.affine, truth.array(found.names))
    return np.linalg.norm(found.world - world, axis=1)


def evaluate_images(localiser: TrainedLocaliser, samples, *, baseline: RunBaseline | None = None) -> list[ImageResult]:
    results = []
    for sample in samples:
        truth = read_landmarks(sample)
        started = time.perf_counter()
        found = localiser.predict(truth.image)
        seconds = time.perf_counter() - started
        result = ImageResult(truth, found, radial_errors(truth, found), seconds)
        if baseline is not None and baseline.model is not None:
            plan = localiser.plan
            points, scores = baseline.model.locate(prepare_image(truth.image, plan), planned_affine(truth.image, plan))
            result.baseline = landmarks_on_image(truth.image, plan, found.names, points, scores)
            result.baseline_errors_mm = radial_errors(truth, result.baseline)
        results.append(result)
    return results


def error_summary(errors: np.ndarray, names: Sequence[str], *, seed: int = 0) -> dict:
    """``errors`` ``(images, K)`` mm -> mean/median error, success within 2 and 4 mm, per landmark, with a
    bootstrap interval over images for the mean."""
    finite = errors[np.isfinite(errors)]
    summary = {
        "mean_error_mm": float(finite.mean()) if finite.size else float("nan"),
        "median_error_mm": float(np.median(finite)) if finite.size else float("nan"),
        **{f"success_{r:g}mm": float((finite <= r).mean()) if finite.size else float("nan") for r in SUCCESS_RADII_MM},
        "landmarks_scored": int(finite.size),
    }
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(BOOTSTRAP):
        picked = errors[rng.integers(0, len(errors), len(errors))]
        values = picked[np.isfinite(picked)]
        if values.size:
            means.append(values.mean())
    summary["mean_error_ci"] = np.percentile(means, [2.5, 97.5]).tolist() if len(means) >= 10 else [None, None]
    summary["per_landmark"] = {}
    for k, name in enumerate(names):
        column = errors[:, k][np.isfinite(errors[:, k])]
        summary["per_landmark"][name] = {
            "mean_error_mm": float(column.mean()) if column.size else None,
            **{f"success_{r:g}mm": float((column <= r).mean()) if column.size else None for r in SUCCESS_RADII_MM},
            "images": int(column.size),
        }
    return summary


def summarize(results: Sequence[ImageResult], baseline: RunBaseline | None = None) -> dict:
    names = results[0].found.names if results else []
    summary = error_summary(np.array([r.errors_mm for r in results]).reshape(len(results), len(names)), names)
    summary["images"] = len(results)
    summary["seconds_per_image"] = float(np.mean([r.seconds for r in results])) if results else None
    summary["deformed"] = any("deformed" in provenance_marks(r.truth.image.tags) for r in results)
    summary["per_image"] = [
        {"image": r.name, "mean_error_mm": _mean(r.errors_mm), "seconds": round(r.seconds, 3)}
        | ({"baseline_mean_error_mm": _mean(r.baseline_errors_mm)} if r.baseline_errors_mm is not None else {})
        for r in results
    ]
    if baseline is not None and baseline.model is not None and results:
        errors = np.array([r.baseline_errors_mm for r in results]).reshape(len(results), len(names))
        summary["baseline"] = {baseline.model.name: error_summary(errors, names)}
        summary["baseline_fitted"] = baseline.model.describe()
        comparison = compare_to_baseline(summary, summary["baseline"], "mean_error_mm", higher_is_better=False)
        if comparison is not None:
            summary["baseline_comparison"] = comparison.to_dict("mean radial error (mm)")
    else:
        summary["baseline"] = {}
        summary["baseline_note"] = (baseline.note if baseline is not None else None) or "No classical baseline."
    return to_jsonable(summary)


class LandmarkScorer:
    """How ``localise evaluate`` and the end of ``localise train`` score a landmark run."""

    noun, items = "Localisation", "image(s)"

    def __init__(self, run_dir: Path) -> None:
        self.localiser = TrainedLocaliser.from_run_dir(run_dir)
        self.baseline = run_baseline(run_dir)

    def score(self, samples) -> tuple[list[ImageResult], dict]:
        results = evaluate_images(self.localiser, samples, baseline=self.baseline)
        return results, summarize(results, self.baseline)

    def write_report(self, path: Path, results, summary, *, title, evaluated_on, history) -> Path:
        from medlearn.apps.localisation.landmark_report import write_localisation_report  # on first use: matplotlib

        return write_localisation_report(
            path,
            title=title,
            evaluated_on=evaluated_on,
            summary=summary,
            results=results,
            plan=self.localiser.plan.to_dict(),
            settings=self.localiser.settings.to_dict(),
            config=self.localiser.config or {},
            history=history,
        )


def report_after_training(run_dir: Path, fit_result) -> tuple[Path | None, dict]:
    """Evaluate the best checkpoint on the run's validation images and write ``report.html``."""
    return run_evaluation.report_after_training(LandmarkScorer(run_dir), run_dir, fit_result.history)


def evaluate_run(
    run_dir: Path, data: str, *, json_path: Path | None = None, report_path: Path | None = None
) -> tuple[dict, Path]:
    """``localise evaluate``: the run's best model and its baseline on the landmark files of ``data``."""
    samples = load_localisation_samples(data)
    return run_evaluation.evaluate_run_on(
        LandmarkScorer(run_dir), run_dir, samples, data, json_path=json_path, report_path=report_path
    )


def _mean(errors: np.ndarray | None) -> float | None:
    if errors is None:
        return None
    finite = errors[np.isfinite(errors)]
    return float(finite.mean()) if finite.size else None
