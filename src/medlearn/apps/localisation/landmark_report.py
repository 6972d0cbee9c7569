"""The localisation report: how far the landmarks land from the annotations, in plain words and per landmark,
beside template matching; overlays of the annotated and found landmarks; training curves; the plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.apps.common.run_info import environment_info
from medlearn.report import plots
from medlearn.report.html import Report, fixed
from medlearn.report.overlays import FALSE_POSITIVE_COLOUR, HIT_COLOUR, MISS_COLOUR, point_overlay

SECTION_TITLES = ("Summary", "Per landmark", "Examples", "Training curves", "Plan", "Configuration", "Environment")
EXAMPLES = 4


def write_localisation_report(
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
) -> Path:
    model = settings.get("model", "?")
    report = Report(title, f"{model} localisation of {len(settings.get('landmarks', []))} landmarks, on {evaluated_on}")
    _summary_section(report, summary, model, config)
    _landmark_section(report, summary)
    _examples_section(report, results)
    report.add_section("Training curves")
    if history:
        report.add_image(None, plots.training_curves(history, "mean_error_mm", "min"))
    else:
        report.add_text("No training history in this run directory.", note=True)
    report.add_section("Plan")
    if plan.get("normalization_reason"):
        reason = plan["normalization_reason"]
        report.add_text(f"Intensity normalisation: {plan.get('normalization')}, because {reason}.")
    report.add_kv(None, dict(plan))
    report.add_section("Configuration")
    report.add_kv(None, {"localisation": settings, "training": config.get("training", {}), "data": config.get("data")})
    report.add_section("Environment")
    report.add_kv(None, environment_info())
    return report.write(path)


def _summary_section(report: Report, summary: Mapping[str, Any], model: str, config: Mapping[str, Any]) -> None:
    report.add_summary("Summary")
    interval = summary.get("mean_error_ci") or [None, None]
    report.add_text(
        f"The {model} model placed {summary.get('landmarks_scored', 0)} landmark(s) in {summary.get('images', 0)} "
        f"image(s). On average a landmark landed {fixed(summary.get('mean_error_mm'), 2)} mm from its annotation "
        f"(95% interval {fixed(interval[0], 2)}-{fixed(interval[1], 2)} mm, resampling images; median "
        f"{fixed(summary.get('median_error_mm'), 2)} mm); {_percent(summary.get('success_2mm'))} landed within 2 mm "
        f"and {_percent(summary.get('success_4mm'))} within 4 mm."
    )
    if "deformed" in (config.get("training_marks") or []) or summary.get("deformed"):
        report.add_text(
            "These images are one template under synthetic deformations (and contrast changes): figures measured on "
            "them say how well the model follows deformations of that template, not how it does on other subjects.",
            note=True,
        )
    report.add_stats(
        None,
        [
            ("mean error (mm)", fixed(summary.get("mean_error_mm"), 2), "distance to the annotation"),
            ("within 2 mm", fixed(summary.get("success_2mm")), "share of landmarks"),
            ("within 4 mm", fixed(summary.get("success_4mm")), "share of landmarks"),
        ],
    )
    baselines = summary.get("baseline") or {}
    if not baselines:
        report.add_text(summary.get("baseline_note") or "No classical baseline.", "Classical baseline", note=True)
        return
    report.add_verdict(summary.get("baseline_comparison"), "Classical baseline")
    rows = [["this model", *_figures(summary)]] + [[name, *_figures(values)] for name, values in baselines.items()]
    report.add_table(
        None,
        rows,
        ["method", "mean error (mm)", "95% interval", "within 2 mm", "within 4 mm"],
        caption=(summary.get("baseline_fitted") or "") + "; fitted on the training images, scored on the same images.",
    )


def _landmark_section(report: Report, summary: Mapping[str, Any]) -> None:
    report.add_section("Per landmark")
    baseline = next(iter((summary.get("baseline") or {}).values()), {})
    rows = []
    for name, values in (summary.get("per_landmark") or {}).items():
        other = (baseline.get("per_landmark") or {}).get(name, {})
        rows.append(
            [
                name,
                fixed(values.get("mean_error_mm"), 2),
                fixed(values.get("success_2mm")),
                fixed(values.get("success_4mm")),
                fixed(other.get("mean_error_mm"), 2),
                values.get("images"),
            ]
        )
    report.add_table(
        None,
        rows,
        ["landmark", "mean error (mm)", "within 2 mm", "within 4 mm", "baseline mean error (mm)", "images"],
    )


def _examples_section(report: Report, results: Sequence[Any]) -> None:
    report.add_section("Examples")
    if not results:
        report.add_text("No images to show.", note=True)
        return
    report.add_text(
        "Green: annotation; red: this model; yellow: template matching (maximum-intensity projection of volumes).",
        note=True,
    )
    ranked = sorted(range(len(results)), key=lambda i: -np.nanmean(results[i].errors_mm))
    items = [_overlay(results[i]) for i in ranked[:EXAMPLES]]
    report.add_image("Largest errors", plots.image_grid(items, ncols=2, cell=4.0))


def _overlay(result: Any) -> tuple[np.ndarray, str]:
    image = result.truth.image
    truth = result.truth.array(result.found.names)
    markers = [(p, 4.0, HIT_COLOUR) for p in truth if not np.isnan(p).any()]
    markers += [(p, 2.0, MISS_COLOUR) for p in result.found.points]
    if result.baseline is not None:
        markers += [(p, 1.0, FALSE_POSITIVE_COLOUR) for p in result.baseline.points]
    rgb, view = point_overlay(image.array, image.spacing, markers)
    return rgb, f"{result.truth.sample.path.name}: mean error {np.nanmean(result.errors_mm):.1f} mm ({view})"


def _figures(values: Mapping[str, Any]) -> list[str]:
    interval = values.get("mean_error_ci") or [None, None]
    return [
        fixed(values.get("mean_error_mm"), 2),
        f"{fixed(interval[0], 2)}-{fixed(interval[1], 2)}",
        fixed(values.get("success_2mm")),
        fixed(values.get("success_4mm")),
    ]


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.0f}%"
