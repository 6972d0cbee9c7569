"""The box-localisation report: how well the boxes fit, in plain words and per structure, beside the threshold
box; box outlines on three planes; training curves; the plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.apps.common.run_info import environment_info
from medlearn.report import plots
from medlearn.report.html import Report, fixed
from medlearn.report.overlays import FALSE_POSITIVE_COLOUR, HIT_COLOUR, MISS_COLOUR, box_planes

SECTION_TITLES = ("Summary", "Per structure", "Boxes on three planes", "Training curves", "Plan", "Configuration")
EXAMPLES = 2


def write_box_report(
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
    structures = settings.get("structures", [])
    report = Report(title, f"{settings.get('model')} boxes of {len(structures)} structure(s), on {evaluated_on}")
    report.add_summary("Summary")
    report.add_text(
        f"Over {summary.get('boxes', 0)} annotated box(es) in {summary.get('images', 0)} volume(s) the predicted "
        f"boxes overlapped the annotated ones by an IoU of {fixed(summary.get('iou'))} on average (a missed box "
        f"counts 0; {_percent(summary.get('found_share'))} were found). The found boxes' centres lay "
        f"{fixed(summary.get('centroid_mm'), 1)} mm from the annotated centres and their walls "
        f"{fixed(summary.get('wall_mm'), 1)} mm from the annotated walls."
    )
    if "deformed" in (config.get("training_marks") or []) or summary.get("deformed"):
        report.add_text(
            "These volumes are one template under synthetic deformations: the figures say how well the model follows "
            "deformations of that template, not how it does on other subjects.",
            note=True,
        )
    _baseline(report, summary)
    report.add_section("Per structure")
    baseline = next(iter((summary.get("baseline") or {}).values()), {})
    rows = []
    for name, values in (summary.get("per_structure") or {}).items():
        other = (baseline.get("per_structure") or {}).get(name, {})
        rows.append(
            [
                name,
                fixed(values.get("iou")),
                fixed(values.get("centroid_mm"), 1),
                fixed(values.get("wall_mm"), 1),
                _percent(values.get("found_share")),
                fixed(other.get("iou")),
                values.get("boxes"),
            ]
        )
    report.add_table(None, rows, ["structure", "IoU", "centroid (mm)", "walls (mm)", "found", "baseline IoU", "boxes"])
    report.add_section("Boxes on three planes")
    if results:
        report.add_text("Green: annotation; red: this model; yellow: threshold box.", note=True)
        ranked = sorted(range(len(results)), key=lambda i: np.mean([m["iou"] for m in results[i].metrics.values()]))
        for i in ranked[:EXAMPLES]:
            result = results[i]
            for name, truth in result.truth.boxes.items():
                boxes = [(truth, HIT_COLOUR), (result.found.get(name), MISS_COLOUR)]
                if result.baseline is not None:
                    boxes.append((result.baseline.get(name), FALSE_POSITIVE_COLOUR))
                centre = (truth[:3] + truth[3:]) / 2
                panels = box_planes(result.truth.image.array, boxes, centre)
                caption = f"{result.name}, {name}: IoU {result.metrics[name]['iou']:.2f}"
                report.add_image(caption, plots.image_grid(panels, ncols=3, cell=3.0))
    else:
        report.add_text("No volumes to show.", note=True)
    report.add_section("Training curves")
    if history:
        report.add_image(None, plots.training_curves(history, "iou", "max"))
    report.add_section("Plan")
    report.add_kv(None, dict(plan))
    report.add_section("Configuration")
    report.add_kv(None, {"localisation": settings, "training": config.get("training", {}), "data": config.get("data")})
    report.add_kv("Environment", environment_info())
    return report.write(path)


def _baseline(report: Report, summary: Mapping[str, Any]) -> None:
    baselines = summary.get("baseline") or {}
    if not baselines:
        report.add_text(summary.get("baseline_note") or "No classical baseline.", "Classical baseline", note=True)
        return
    report.add_verdict(summary.get("baseline_comparison"), "Classical baseline")
    rows = [["this model", *_figures(summary)]] + [[name, *_figures(values)] for name, values in baselines.items()]
    report.add_table(
        None,
        rows,
        ["method", "IoU", "centroid (mm)", "walls (mm)", "found"],
        caption=(summary.get("baseline_fitted") or "")
        + "; fitted on the training volumes, scored on the same volumes.",
    )


def _figures(values: Mapping[str, Any]) -> list[str]:
    return [
        fixed(values.get("iou")),
        fixed(values.get("centroid_mm"), 1),
        fixed(values.get("wall_mm"), 1),
        _percent(values.get("found_share")),
    ]


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.0f}%"
