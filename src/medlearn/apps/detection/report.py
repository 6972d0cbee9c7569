"""The detection report: how many objects the model finds at how many false alarms, in plain words and as the
FROC curve beside the classical baseline's; sensitivity by object size; per-image counts; examples of hits,
misses and false positives; training curves; the plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.apps.common.run_info import environment_info
from medlearn.evaluation.detection import match_detections
from medlearn.report import plots
from medlearn.report.html import Report, fixed
from medlearn.report.overlays import FALSE_POSITIVE_COLOUR, HIT_COLOUR, MISS_COLOUR, point_overlay

SECTION_TITLES = (
    "Summary",
    "FROC",
    "Sensitivity by object size",
    "Per-image results",
    "Examples",
    "Training curves",
    "Plan",
    "Configuration",
    "Environment",
)
EXAMPLES_PER_END = 3


def write_detection_report(
    path: str | Path,
    *,
    title: str,
    evaluated_on: str,
    summary: Mapping[str, Any],
    results: Sequence[Any],
    plan: Mapping[str, Any],
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]] = (),
    fingerprint: Mapping[str, Any] | None = None,
) -> Path:
    """Write the report; ``results`` are the evaluated images (:class:`~medlearn.apps.detection.evaluate.ImageResult`)
    in ``summary['per_image']`` order."""
    model = settings.get("model", "?")
    hybrid = bool(summary.get("hybrid"))
    where = f"HYBRID data (synthetic lesions in real images): {evaluated_on}" if hybrid else evaluated_on
    report = Report(title, f"{model} detection, evaluated on {where}")
    _summary_section(report, summary, model, hybrid)
    _froc_section(report, summary)
    _size_section(report, summary)
    _per_image_section(report, summary)
    _examples_section(report, summary, results)
    report.add_section("Training curves")
    if history:
        report.add_image(None, plots.training_curves(history, "cpm", "max"))
    else:
        report.add_text("No training history in this run directory.", note=True)
    report.add_section("Plan")
    if plan.get("normalization_reason"):
        reason = plan["normalization_reason"]
        report.add_text(f"Intensity normalisation: {plan.get('normalization')}, because {reason}.")
    report.add_kv(None, dict(plan))
    if fingerprint:
        images = len(fingerprint.get("cases", []))
        report.add_kv("Fingerprint", {"images": images, "modality": fingerprint.get("modality")})
    report.add_section("Configuration")
    report.add_kv(None, {"detection": settings, "training": config.get("training", {}), "data": config.get("data")})
    report.add_section("Environment")
    report.add_kv(None, environment_info())
    return report.write(path)


def _summary_section(report: Report, summary: Mapping[str, Any], model: str, hybrid: bool) -> None:
    unit = summary.get("distance_unit", "mm")
    report.add_summary("Summary")
    interval = summary.get("cpm_ci") or [None, None]
    report.add_text(
        f"The {model} detector looked for objects in {summary.get('images', 0)} image(s) holding "
        f"{summary.get('targets', 0)} annotated object(s). Allowing one false alarm per image on average, it finds "
        f"{_percent(summary.get('sensitivity_at_1fp'))} of the objects. Averaged over 1/8 to 8 false alarms per "
        f"image (the CPM of the LUNA16 challenge) it finds {_percent(summary.get('cpm'))} "
        f"(95% interval {_percent(interval[0])}-{_percent(interval[1])}, resampling images). Its hits lie "
        f"{fixed(summary.get('mean_distance_mm'), 1)} {unit} from the objects' centres on average."
        + (" These figures were measured on HYBRID data (synthetic lesions in real images)." if hybrid else "")
    )
    report.add_stats(
        None,
        [
            ("CPM", fixed(summary.get("cpm")), "mean sensitivity at 1/8-8 false positives per image"),
            ("sensitivity @ 1 FP/image", fixed(summary.get("sensitivity_at_1fp")), "share of objects found"),
            ("average precision", fixed(summary.get("average_precision")), "area under precision-recall"),
            (f"distance ({unit})", fixed(summary.get("mean_distance_mm"), 1), "hit to object centre"),
        ],
    )
    baselines = summary.get("baseline") or {}
    if not baselines:
        note = summary.get("baseline_note") or "No classical baseline was scored."
        report.add_text(note, "Classical baseline", note=True)
        return
    report.add_verdict(summary.get("baseline_comparison"), "Classical baseline")
    rows = [["this model", *_figures(summary)]]
    rows += [[name, *_figures(values)] for name, values in baselines.items()]
    caption = (
        "Laplacian-of-Gaussian blob detection"
        + (f" ({summary['baseline_fitted']})" if summary.get("baseline_fitted") else "")
        + ", its scales and polarity tuned on the training images; scored on the same images."
    )
    report.add_table(None, rows, ["method", "CPM", "95% interval", "sens. @ 1 FP/image", "AP"], caption=caption)


def _froc_section(report: Report, summary: Mapping[str, Any]) -> None:
    report.add_section("FROC")
    curves = {"this model": _curve(summary)}
    cpm = {"this model": summary.get("cpm")}
    for name, values in (summary.get("baseline") or {}).items():
        curves[name] = _curve(values)
        cpm[name] = values.get("cpm")
    report.add_image(
        None,
        plots.froc_plot(curves, cpm=cpm),
        caption=f"{summary.get('fp_rates_note', '')}. Each point is a score threshold: lower thresholds find more "
        "objects at more false alarms.",
    )
    baseline = next(iter((summary.get("baseline") or {}).values()), {})
    rows = []
    for i, point in enumerate(summary.get("froc", [])):
        other = (baseline.get("froc") or [{}] * (i + 1))[i] if baseline else {}
        rows.append([_rate(point["fp_per_image"]), fixed(point.get("sensitivity")), fixed(other.get("sensitivity"))])
    report.add_table(None, rows, ["false positives per image", "sensitivity (model)", "sensitivity (baseline)"])


def _size_section(report: Report, summary: Mapping[str, Any]) -> None:
    report.add_section("Sensitivity by object size")
    bins = summary.get("sensitivity_by_radius") or []
    if not bins:
        report.add_text("No annotated objects.", note=True)
        return
    threshold = summary.get("operating_threshold")
    rows = [
        [
            f"{b['radius_mm_from']:.1f}"
            if b["radius_mm_from"] == b["radius_mm_to"]
            else f"{b['radius_mm_from']:.1f}-{b['radius_mm_to']:.1f}",
            b["objects"],
            _percent(b.get("sensitivity")),
        ]
        for b in bins
    ]
    report.add_table(
        None,
        rows,
        [f"object radius ({summary.get('distance_unit', 'mm')})", "objects", "found"],
        caption=f"At the operating point of one false positive per image (score >= {fixed(threshold)}).",
    )


def _per_image_section(report: Report, summary: Mapping[str, Any]) -> None:
    report.add_section("Per-image results")
    rows = [
        [r["image"], r["objects"], r["found"], r["missed"], r["false_positives"], fixed(r.get("seconds"), 2)]
        for r in summary.get("per_image", [])
    ]
    report.add_table(
        None,
        rows,
        ["image", "objects", "found", "missed", "false positives", "seconds"],
        caption=f"At the operating point (score >= {fixed(summary.get('operating_threshold'))}).",
    )


def _examples_section(report: Report, summary: Mapping[str, Any], results: Sequence[Any]) -> None:
    """The images with the most errors and those with the fewest, hits green, misses red, false positives yellow."""
    report.add_section("Examples")
    rows = list(summary.get("per_image", []))
    if not results:
        report.add_text("No images to show.", note=True)
        return
    threshold = summary.get("operating_threshold")
    threshold = float("inf") if threshold is None else float(threshold)
    errors = [row["missed"] + row["false_positives"] for row in rows]
    ranked = sorted(range(len(results)), key=lambda i: errors[i])
    best = ranked[:EXAMPLES_PER_END]
    worst = [i for i in ranked[::-1][:EXAMPLES_PER_END] if i not in best]
    report.add_text(
        "Circles: green = object found, red = object missed, yellow = false positive, at the operating point.",
        note=True,
    )
    fewest = plots.image_grid([_overlay(results[i], threshold) for i in best], ncols=3, cell=3.2)
    report.add_image("Fewest errors", fewest)
    if worst:
        report.add_image(
            "Most errors", plots.image_grid([_overlay(results[i], threshold) for i in worst], ncols=3, cell=3.2)
        )


def _overlay(result: Any, threshold: float) -> tuple[np.ndarray, str]:
    spacing = np.asarray(result.image.spacing, dtype=float)
    voxel = float(np.prod(spacing) ** (1 / len(spacing)))
    found = np.nan_to_num(result.match.target_scores, nan=-np.inf) >= threshold
    markers = [
        (centre, radius / voxel, HIT_COLOUR if hit else MISS_COLOUR)
        for centre, radius, hit in zip(result.objects.centres, result.objects.radius_mm, found, strict=True)
    ]
    targets = result.objects.targets(result.image.spacing)
    for point in result.detections.above(threshold).points:  # the evaluation's own hit rule, point by point
        if match_detections(point[None], np.ones(1), targets).false_positive_scores.size:
            markers.append((point, 3.0, FALSE_POSITIVE_COLOUR))
    rgb, view = point_overlay(result.image.array, result.image.spacing, markers)
    missed = int((~found).sum())
    caption = f"{result.name}: {int(found.sum())} found, {missed} missed" + (f" ({view})" if view else "")
    return rgb, caption


def _figures(values: Mapping[str, Any]) -> list[str]:
    interval = values.get("cpm_ci") or [None, None]
    return [
        fixed(values.get("cpm")),
        f"{fixed(interval[0])}-{fixed(interval[1])}",
        fixed(values.get("sensitivity_at_1fp")),
        fixed(values.get("average_precision")),
    ]


def _curve(values: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    points = [p for p in values.get("froc_curve", []) if p.get("sensitivity") is not None]
    return [p["fp_per_image"] for p in points], [p["sensitivity"] for p in points]


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f}%"


def _rate(value: float) -> str:
    return f"1/{round(1 / value)}" if value < 1 else f"{value:g}"
