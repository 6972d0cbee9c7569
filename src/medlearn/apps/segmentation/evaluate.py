"""Evaluate a segmentation run on labelled cases: per-case and per-class Dice, IoU, HD95, ASD (mm),
in the images' own geometry, plus the HTML report with overlays of the best and worst cases.

Metrics are computed on the prediction resampled back to each input's original grid against the
original mask (never on the plan's resampled grid), so figures are comparable with any other tool.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.apps.common.run_info import data_slug, read_history
from medlearn.apps.segmentation.cases import class_indices
from medlearn.apps.segmentation.model import TrainedSegmenter
from medlearn.data.sources import load_pairs
from medlearn.data.splits import Split
from medlearn.errors import MedlearnError
from medlearn.evaluation.classification import to_jsonable
from medlearn.evaluation.segmentation import segmentation_metrics
from medlearn.io import load
from medlearn.planning.fingerprint import check_same_geometry
from medlearn.utils.atomic import write_text_atomic

SUMMARY_METRICS = ("dice", "iou", "hd95_mm", "asd_mm")


@dataclass
class CaseResult:
    name: str
    image: str
    metrics: dict[int, dict[str, float]]
    seconds: float
    overlay: np.ndarray | None = None
    overlay_caption: str = ""
    #: The image carries synthetic lesions (medlearn.data.hybrid): results must say so.
    hybrid: bool = False

    def mean(self, metric: str) -> float:
        """Mean over the classes present in truth or prediction (NaN when none is)."""
        values = [m[metric] for m in self.metrics.values() if not math.isnan(m[metric])]
        return float(np.mean(values)) if values else float("nan")

    def to_dict(self) -> dict:
        return {
            "case": self.name,
            "image": self.image,
            **{metric: to_jsonable(self.mean(metric)) for metric in SUMMARY_METRICS},
            "per_class": {str(k): {m: to_jsonable(v) for m, v in values.items()} for k, values in self.metrics.items()},
            "seconds": round(self.seconds, 3),
        }


def evaluate_cases(segmenter: TrainedSegmenter, samples, *, tta: bool | None = None) -> list[CaseResult]:
    """Segment each labelled sample and score it against its mask in the original geometry."""
    from medlearn.report.overlays import volume_overlay  # on first use: matplotlib's colour maps

    results = []
    for sample in samples:
        if sample.target is None:
            raise MedlearnError("no mask given for this image", sample.path)
        image, mask = load(sample.path), load(sample.target)
        check_same_geometry(image, mask)
        class_indices(mask, segmenter.plan.labels)  # refuses labels the model does not know
        started = time.perf_counter()
        prediction = segmenter.predict(image, tta=tta)
        seconds = time.perf_counter() - started
        truth = np.rint(mask.array[0]).astype(np.int64)
        predicted = prediction.mask.array[0].astype(np.int64)
        metrics = segmentation_metrics(predicted, truth, image.spacing, segmenter.plan.labels)
        overlay, caption = volume_overlay(image.array, image.spacing, predicted, truth)
        hybrid = bool(image.tags.get("hybrid"))
        results.append(CaseResult(Path(sample.path).name, str(sample.path), metrics, seconds, overlay, caption, hybrid))
    return results


def summarize(results: list[CaseResult], labels: list[int]) -> dict:
    """Means over cases (NaN-free), per class, and how many cases missed a structure entirely (HD95 = inf)."""
    summary: dict = {"cases": len(results), "hybrid": any(r.hybrid for r in results)}
    for metric in SUMMARY_METRICS:
        values = np.array([r.mean(metric) for r in results], dtype=float)
        finite = values[np.isfinite(values)]
        summary[metric] = to_jsonable(float(finite.mean())) if finite.size else None
    summary["cases_with_missed_structure"] = int(sum(not math.isfinite(r.mean("hd95_mm")) for r in results))
    per_class = {}
    for label in labels:
        if label == 0:
            continue
        per_class[str(label)] = {}
        for metric in SUMMARY_METRICS:
            values = np.array([r.metrics[label][metric] for r in results], dtype=float)
            finite = values[np.isfinite(values)]
            per_class[str(label)][metric] = to_jsonable(float(finite.mean())) if finite.size else None
    summary["per_class"] = per_class
    summary["per_case"] = [r.to_dict() for r in results]
    return summary


def report_after_training(run_dir: Path, fit_result) -> tuple[Path | None, dict]:
    """Evaluate the best checkpoint on the run's validation cases and write ``report.html``."""

    split = Split.from_csv(Path(run_dir) / "split.csv")
    if not split.val:
        return None, {}
    segmenter = TrainedSegmenter.from_run_dir(run_dir)
    results = evaluate_cases(segmenter, split.val)
    summary = summarize(results, segmenter.plan.labels)
    summary["evaluated_on"] = "validation"
    write_text_atomic(Path(run_dir) / "val_metrics.json", json.dumps(summary, indent=2))
    report = _write_report(
        Path(run_dir) / "report.html",
        segmenter,
        results,
        summary,
        title=f"Segmentation run {Path(run_dir).name}",
        evaluated_on=f"the {len(results)} validation case(s) of the run",
        history=list(fit_result.history),
        run_dir=Path(run_dir),
    )
    return report, summary


def evaluate_run(
    run_dir: Path, data: str, *, json_path: Path | None = None, report_path: Path | None = None, tta: bool | None = None
) -> tuple[dict, Path]:
    """``segment evaluate``: metrics of a run's best model on the pairs of ``data`` (CSV or folder)."""

    run_dir = Path(run_dir)
    segmenter = TrainedSegmenter.from_run_dir(run_dir)
    samples = load_pairs(data)
    results = evaluate_cases(segmenter, samples, tta=tta)
    summary = summarize(results, segmenter.plan.labels)
    summary["evaluated_on"] = str(data)
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(summary, indent=2))
    report_path = Path(report_path) if report_path else run_dir / f"evaluation-{data_slug(data)}.html"
    _write_report(
        report_path,
        segmenter,
        results,
        summary,
        title=f"Evaluation of {run_dir.name} on {Path(data).name}",
        evaluated_on=f"{len(results)} labelled case(s) from {data}",
        history=read_history(run_dir),
        run_dir=run_dir,
    )
    return summary, report_path


def _write_report(path: Path, segmenter, results, summary, *, title, evaluated_on, history, run_dir) -> Path:
    from medlearn.apps.segmentation.report import write_segmentation_report  # loads matplotlib

    fingerprint_file = run_dir / "fingerprint.json"
    fingerprint = json.loads(fingerprint_file.read_text(encoding="utf-8")) if fingerprint_file.is_file() else None
    return write_segmentation_report(
        path,
        title=title,
        evaluated_on=evaluated_on,
        summary=summary,
        overlays=[(r.overlay, f"{r.name}: Dice {r.mean('dice'):.3f} {r.overlay_caption}".strip()) for r in results],
        plan=segmenter.plan.to_dict(),
        settings=segmenter.settings.to_dict(),
        config=segmenter.config or {},
        history=history,
        fingerprint=fingerprint,
        hybrid=bool(summary.get("hybrid")),
    )
