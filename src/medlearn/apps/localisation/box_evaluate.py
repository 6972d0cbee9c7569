"""Evaluate a box localiser on annotated volumes: IoU, centroid and wall distances (mm) per structure, beside the
intensity-threshold box, on each volume's own grid; JSON and the HTML report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.apps.common import run_evaluation
from medlearn.apps.localisation.box_baseline import BoxBaseline, run_baseline
from medlearn.apps.localisation.box_model import TrainedBoxLocaliser
from medlearn.apps.localisation.boxes import ImageBoxes, read_boxes
from medlearn.apps.localisation.landmarks import load_localisation_samples
from medlearn.evaluation.baselines import compare_to_baseline
from medlearn.evaluation.boxes import box_metrics, summarize_boxes
from medlearn.evaluation.classification import to_jsonable
from medlearn.io.image import provenance_marks


@dataclass
class BoxResult:
    truth: ImageBoxes
    found: dict[str, np.ndarray | None]
    metrics: dict[str, dict[str, float]]
    seconds: float
    baseline: dict[str, np.ndarray | None] | None = None
    baseline_metrics: dict[str, dict[str, float]] | None = None

    @property
    def name(self) -> str:
        return self.truth.sample.path.name


def _scores(found: dict[str, np.ndarray | None], truth: ImageBoxes) -> dict[str, dict[str, float]]:
    return {name: box_metrics(found.get(name), box, truth.image.spacing) for name, box in truth.boxes.items()}


def evaluate_volumes(
    localiser: TrainedBoxLocaliser, samples, *, baseline: BoxBaseline | None = None
) -> list[BoxResult]:
    results = []
    structures = localiser.settings.structures
    for sample in samples:
        truth = read_boxes(sample)
        truth.boxes = {name: box for name, box in truth.boxes.items() if name in structures}
        started = time.perf_counter()
        found = localiser.predict(truth.image)
        result = BoxResult(truth, found, _scores(found, truth), time.perf_counter() - started)
        if baseline is not None and baseline.threshold is not None:
            result.baseline = baseline.boxes(truth.image, structures)
            result.baseline_metrics = _scores(result.baseline, truth)
        results.append(result)
    return results


def summarize(results: Sequence[BoxResult], structures: Sequence[str], baseline: BoxBaseline | None = None) -> dict:
    summary = summarize_boxes([r.metrics for r in results], structures)
    summary["images"] = len(results)
    summary["seconds_per_image"] = float(np.mean([r.seconds for r in results])) if results else None
    summary["deformed"] = any("deformed" in provenance_marks(r.truth.image.tags) for r in results)
    summary["per_image"] = [
        {"image": r.name, **{f"iou_{name}": values["iou"] for name, values in r.metrics.items()}} for r in results
    ]
    if baseline is not None and baseline.threshold is not None and results:
        summary["baseline"] = {baseline.name: summarize_boxes([r.baseline_metrics for r in results], structures)}
        summary["baseline_fitted"] = baseline.describe()
        comparison = compare_to_baseline(summary, summary["baseline"], "iou")
        if comparison is not None:
            summary["baseline_comparison"] = comparison.to_dict("box IoU")
    else:
        summary["baseline"] = {}
        summary["baseline_note"] = (baseline.note if baseline is not None else None) or "No classical baseline."
    return to_jsonable(summary)


class BoxScorer:
    """How ``localise evaluate`` and the end of ``localise train`` score a box run."""

    noun, items = "Box localisation", "volume(s)"

    def __init__(self, run_dir: Path) -> None:
        self.localiser = TrainedBoxLocaliser.from_run_dir(run_dir)
        self.baseline = run_baseline(run_dir)

    def score(self, samples) -> tuple[list[BoxResult], dict]:
        results = evaluate_volumes(self.localiser, samples, baseline=self.baseline)
        return results, summarize(results, self.localiser.settings.structures, self.baseline)

    def write_report(self, path: Path, results, summary, *, title, evaluated_on, history) -> Path:
        from medlearn.apps.localisation.box_report import write_box_report  # on first use: matplotlib

        return write_box_report(
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
    """Evaluate the best checkpoint on the run's validation volumes and write ``report.html``."""
    return run_evaluation.report_after_training(BoxScorer(run_dir), run_dir, fit_result.history)


def evaluate_box_run(
    run_dir: Path, data: str, *, json_path: Path | None = None, report_path: Path | None = None
) -> tuple[dict, Path]:
    """``localise evaluate`` of a box run."""
    samples = load_localisation_samples(data)
    return run_evaluation.evaluate_run_on(
        BoxScorer(run_dir), run_dir, samples, data, json_path=json_path, report_path=report_path
    )
