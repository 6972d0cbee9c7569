"""The segmentation report: headline overlap and distance figures in plain words, per-case tables,
overlays of the best and worst cases, training curves, and the plan that configured the model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.apps.common.run_info import environment_info
from medlearn.report import plots
from medlearn.report.html import Report, fixed

SECTION_TITLES = (
    "Summary",
    "Per-case results",
    "Best and worst cases",
    "Training curves",
    "Plan",
    "Configuration",
    "Environment",
)
OVERLAYS_PER_END = 3

_LABELS = {"dice": "Dice", "iou": "IoU", "hd95_mm": "HD95 (mm)", "asd_mm": "ASD (mm)"}
_MEANINGS = {
    "dice": "overlap of prediction and truth, 0 (none) to 1 (identical)",
    "iou": "intersection over union, a stricter overlap score",
    "hd95_mm": "95th-percentile boundary distance in millimetres (lower is better)",
    "asd_mm": "average boundary distance in millimetres (lower is better)",
}


def write_segmentation_report(
    path: str | Path,
    *,
    title: str,
    evaluated_on: str,
    summary: Mapping[str, Any],
    overlays: Sequence[tuple[np.ndarray | None, str]],
    plan: Mapping[str, Any],
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]] = (),
    fingerprint: Mapping[str, Any] | None = None,
    hybrid: bool = False,
) -> Path:
    """Write the report; ``overlays`` is one ``(RGB image, caption)`` per case, in ``summary['per_case']`` order."""

    model = settings.get("model", "?")
    where = f"HYBRID data (synthetic lesions in real images): {evaluated_on}" if hybrid else evaluated_on
    report = Report(title, f"{model} segmentation, evaluated on {where}")
    report.add_summary("Summary")
    dims = f"{plan.get('spatial_dims')}D" + (" slice by slice" if plan.get("slice_axis") is not None else "")
    report.add_text(
        f"The {model} model ({dims}) outlined the structures of {summary.get('cases', 0)} case(s). "
        f"On average its outline overlapped the reference by a Dice score of {fixed(summary.get('dice'))} "
        f"and its boundary stayed within {fixed(summary.get('hd95_mm'), 1)} mm of the reference for 95% of "
        "boundary points. Green outlines below are the reference, red the model."
        + (" These figures were measured on HYBRID data (synthetic lesions in real images)." if hybrid else "")
    )
    report.add_stats(
        None,
        [
            (name, fixed(summary.get(name), 3 if name in ("dice", "iou") else 1), meaning)
            for name, meaning in _MEANINGS.items()
        ],
    )
    missed = int(summary.get("cases_with_missed_structure", 0))
    if missed:
        report.add_text(
            f"In {missed} case(s) the model missed a structure entirely (infinite distance); those cases are "
            "left out of the mean distances but counted in the Dice.",
            note=True,
        )

    report.add_section("Per-case results")
    cases = list(summary.get("per_case", []))
    report.add_table(
        None,
        [[c["case"], *(fixed(c.get(m)) for m in _MEANINGS), fixed(c.get("seconds"), 2)] for c in cases],
        ["case", "Dice", "IoU", "HD95 (mm)", "ASD (mm)", "seconds"],
    )
    per_class = summary.get("per_class", {})
    if len(per_class) > 1:
        report.add_table(
            "Per class",
            [[label, *(fixed(values.get(m)) for m in _MEANINGS)] for label, values in per_class.items()],
            ["label", "Dice", "IoU", "HD95 (mm)", "ASD (mm)"],
        )

    report.add_section("Best and worst cases")
    ranked = sorted(
        (i for i, (image, _) in enumerate(overlays) if image is not None),
        key=lambda i: -(cases[i].get("dice") if cases[i].get("dice") is not None else -1.0),
    )
    if ranked:
        best = ranked[:OVERLAYS_PER_END]
        worst = [i for i in ranked[::-1][:OVERLAYS_PER_END] if i not in best]
        report.add_image("Best", plots.image_grid([overlays[i] for i in best], ncols=3, cell=3.2))
        if worst:
            report.add_image("Worst", plots.image_grid([overlays[i] for i in worst], ncols=3, cell=3.2))
    else:
        report.add_text("No cases to show.", note=True)

    report.add_section("Training curves")
    if history:
        report.add_image(None, plots.training_curves(history, "dice", "max"))
    else:
        report.add_text("No training history in this run directory.", note=True)

    report.add_section("Plan")
    report.add_text(
        "The plan was derived from the training data's fingerprint (spacings, sizes, foreground intensities, "
        "class frequencies), as nnU-Net does, then overridden where the user asked."
    )
    report.add_kv(None, {key: value for key, value in plan.items()})
    if fingerprint:
        report.add_kv(
            "Fingerprint",
            {
                "cases": len(fingerprint.get("cases", [])),
                "modality": fingerprint.get("modality"),
                "class frequencies": fingerprint.get("class_frequencies"),
                "foreground intensity": fingerprint.get("foreground_intensity"),
            },
        )
    report.add_section("Configuration")
    report.add_kv(None, {"segmentation": settings, "training": config.get("training", {}), "data": config.get("data")})
    report.add_section("Environment")
    report.add_kv(None, environment_info())
    return report.write(path)
