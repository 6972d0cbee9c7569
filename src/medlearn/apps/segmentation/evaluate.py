"""Evaluate a segmentation run on labelled cases: per-case and per-class Dice, IoU, HD95, ASD (mm),
in the images' own geometry, beside the classical baselines, plus the HTML report with the failure analysis.

Metrics are computed on the prediction resampled back to each input's original grid against the
original mask (never on the plan's resampled grid), so figures are comparable with any other tool. The
classical baselines (:mod:`medlearn.apps.segmentation.baseline`) are scored on the same cases; a case whose
truth is empty and whose prediction is not counts as a false positive (Dice 0), apart from missed structures.
A ``shift`` (:mod:`medlearn.evaluation.shifts`) re-scores the run on intensity-scaled, offset, noisier or
coarser copies of the cases, to measure how much model and baselines lose.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.common.run_info import data_slug, read_history
from medlearn.apps.segmentation.atlas import Atlas
from medlearn.apps.segmentation.baseline import RunBaseline, run_baseline
from medlearn.apps.segmentation.cases import class_indices
from medlearn.apps.segmentation.model import TrainedSegmenter
from medlearn.data.sources import load_pairs
from medlearn.data.splits import Split
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines import compare_to_baseline
from medlearn.evaluation.baselines.segmentation import GLOBAL_THRESHOLD, OTSU
from medlearn.evaluation.classification import to_jsonable
from medlearn.evaluation.segmentation import case_outcome, segmentation_metrics
from medlearn.evaluation.shifts import Shift
from medlearn.io import load
from medlearn.io.geometry import check_same_geometry
from medlearn.utils.atomic import write_text_atomic

SUMMARY_METRICS = ("dice", "iou", "hd95_mm", "asd_mm")
#: Voxels of channel 0 kept per evaluated case for the intensity histogram of the report.
INTENSITY_SAMPLES = 20_000


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
    #: Per baseline name, its metrics on this case (as ``metrics``).
    baseline_metrics: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    #: "found", "missed", "false positive" or "empty" (see :func:`medlearn.evaluation.segmentation.case_outcome`).
    outcome: str = "found"
    #: Share of the case's voxels with a label > 0, and its mean intensity (channel 0, original units).
    foreground_share: float = float("nan")
    mean_intensity: float = float("nan")
    #: A sample of the case's intensities (channel 0), for the histogram of the report.
    intensities: np.ndarray | None = None
    #: "mm", or "px" for an image that records no pixel size (a plain PNG): distances are then in pixels.
    distance_unit: str = "mm"

    def mean(self, metric: str, baseline: str | None = None) -> float:
        """Mean over the classes present in truth or prediction (NaN when none is), of the model or a baseline."""
        metrics = self.metrics if baseline is None else self.baseline_metrics[baseline]
        values = [m[metric] for m in metrics.values() if not math.isnan(m[metric])]
        return float(np.mean(values)) if values else float("nan")

    def to_dict(self) -> dict:
        return {
            "case": self.name,
            "image": self.image,
            **{metric: to_jsonable(self.mean(metric)) for metric in SUMMARY_METRICS},
            "per_class": {str(k): {m: to_jsonable(v) for m, v in values.items()} for k, values in self.metrics.items()},
            "outcome": self.outcome,
            "foreground_share": to_jsonable(self.foreground_share),
            "mean_intensity": to_jsonable(self.mean_intensity),
            "baseline_dice": {name: to_jsonable(self.mean("dice", name)) for name in self.baseline_metrics},
            "seconds": round(self.seconds, 3),
        }


def evaluate_cases(
    segmenter: TrainedSegmenter,
    samples,
    *,
    tta: bool | None = None,
    baseline: RunBaseline | None = None,
    shift: Shift | None = None,
    atlas: Atlas | None = None,
) -> list[CaseResult]:
    """Segment each labelled sample (shifted first, if asked) with the model and the baselines (and the atlas,
    when given), and score each against the mask in the original geometry."""
    from medlearn.report.overlays import volume_overlay  # on first use: matplotlib's colour maps

    labels = segmenter.plan.labels
    results = []
    for sample in samples:
        if sample.target is None:
            raise MedlearnError("no mask given for this image", sample.path)
        image, mask = load(sample.path), load(sample.target)
        check_same_geometry(image, mask)
        class_indices(mask, labels)  # refuses labels the model does not know
        if shift is not None:
            image, mask = shift.apply(image, mask)
        started = time.perf_counter()
        prediction = segmenter.predict(image, tta=tta)
        seconds = time.perf_counter() - started
        truth = np.rint(mask.array[0]).astype(np.int64)
        predicted = prediction.mask.array[0].astype(np.int64)
        metrics = segmentation_metrics(predicted, truth, image.spacing, labels)
        present = {int(label): bool((truth == label).any()) for label in labels if label != 0}
        overlay, caption = volume_overlay(image.array, image.spacing, predicted, truth)
        results.append(
            CaseResult(
                Path(sample.path).name,
                str(sample.path),
                metrics,
                seconds,
                overlay,
                caption,
                hybrid=bool(image.tags.get("hybrid")),
                baseline_metrics=_baseline_metrics(baseline, image, truth, labels, atlas),
                outcome=case_outcome(metrics, present),
                foreground_share=float((truth > 0).mean()),
                mean_intensity=float(image.array[0].mean()),
                intensities=_intensity_sample(image.array[0]),
                distance_unit="px" if image.tags.get("spacing_unknown") else "mm",
            )
        )
    return results


def _baseline_metrics(baseline: RunBaseline | None, image, truth: np.ndarray, labels, atlas: Atlas | None) -> dict:
    predictions = {}
    if baseline is not None and baseline.model is not None:
        predictions = {GLOBAL_THRESHOLD: baseline.model.predict(image), OTSU: baseline.model.predict_otsu(image)}
    if atlas is not None:
        predictions[atlas.name] = atlas.segment(image)
    return {
        name: segmentation_metrics(np.asarray(predicted, np.int64), truth, image.spacing, labels)
        for name, predicted in predictions.items()
    }


def _intensity_sample(values: np.ndarray) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float32).ravel()
    if flat.size > INTENSITY_SAMPLES:
        flat = flat[np.random.default_rng(0).choice(flat.size, INTENSITY_SAMPLES, replace=False)]
    return flat


def summarize(results: list[CaseResult], labels: list[int], baseline: RunBaseline | None = None) -> dict:
    """Means over cases (NaN-free), per class, the baselines' means and the plain-words comparison, and how many
    cases missed a structure entirely or predicted one where the truth has none."""
    summary: dict = {"cases": len(results), "hybrid": any(r.hybrid for r in results)}
    summary.update(_means(results, None))
    summary["cases_with_missed_structure"] = sum(r.outcome == "missed" for r in results)
    summary["cases_with_false_positive"] = sum(r.outcome == "false positive" for r in results)
    summary["hd95_mm_over"] = "cases where both truth and prediction hold the structure"
    units = {r.distance_unit for r in results}
    summary["distance_unit"] = "px" if "px" in units else "mm"  # the *_mm keys hold pixels then
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
    names = list(results[0].baseline_metrics) if results else []
    summary["baseline"] = {name: _means(results, name) for name in names}
    comparison = compare_to_baseline(summary, summary["baseline"], "dice")
    summary["baseline_comparison"] = comparison.to_dict("Dice") if comparison is not None else None
    if baseline is not None and baseline.model is not None:
        summary["baseline_fitted"] = baseline.model.describe()
    if baseline is not None and baseline.note:
        summary["baseline_note"] = baseline.note
    summary["per_case"] = [r.to_dict() for r in results]
    return summary


def _means(results: list[CaseResult], baseline: str | None) -> dict:
    out = {}
    for metric in SUMMARY_METRICS:
        values = np.array([r.mean(metric, baseline) for r in results], dtype=float)
        finite = values[np.isfinite(values)]
        out[metric] = to_jsonable(float(finite.mean())) if finite.size else None
    return out


def report_after_training(run_dir: Path, fit_result) -> tuple[Path | None, dict]:
    """Evaluate the best checkpoint on the run's validation cases and write ``report.html``."""

    split = Split.from_csv(Path(run_dir) / "split.csv")
    if not split.val:
        return None, {}
    segmenter = TrainedSegmenter.from_run_dir(run_dir)
    baseline = run_baseline(run_dir, segmenter.plan.labels)
    results = evaluate_cases(segmenter, split.val, baseline=baseline)
    summary = summarize(results, segmenter.plan.labels, baseline)
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
    run_dir: Path,
    data: str,
    *,
    json_path: Path | None = None,
    report_path: Path | None = None,
    tta: bool | None = None,
    shift: Shift | None = None,
    atlas: Atlas | None = None,
) -> tuple[dict, Path]:
    """``segment evaluate``: metrics of a run's best model and its classical baselines (and an atlas, when given)
    on the pairs of ``data`` (CSV or folder), the cases shifted first when ``shift`` is given."""
    run_dir = Path(run_dir)
    segmenter = TrainedSegmenter.from_run_dir(run_dir)
    samples = load_pairs(data)
    baseline = run_baseline(run_dir, segmenter.plan.labels)
    results = evaluate_cases(segmenter, samples, tta=tta, baseline=baseline, shift=shift, atlas=atlas)
    summary = summarize(results, segmenter.plan.labels, baseline)
    summary["evaluated_on"] = str(data)
    summary["shift"] = shift.text if shift is not None else None
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(summary, indent=2))
    shifted = f"-{_slug(shift.text)}" if shift is not None else ""
    report_path = Path(report_path) if report_path else run_dir / f"evaluation-{data_slug(data)}{shifted}.html"
    _write_report(
        report_path,
        segmenter,
        results,
        summary,
        title=f"Evaluation of {run_dir.name} on {Path(data).name}" + (f" (shift {shift.text})" if shift else ""),
        evaluated_on=f"{len(results)} labelled case(s) from {data}"
        + (f", shifted by {shift.text}" if shift is not None else ""),
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
        intensities=[r.intensities for r in results if r.intensities is not None],
        plan=segmenter.plan.to_dict(),
        settings=segmenter.settings.to_dict(),
        config=segmenter.config or {},
        history=history,
        fingerprint=fingerprint,
        hybrid=bool(summary.get("hybrid")),
    )


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in text)
