"""The segmentation report: headline overlap and distance figures in plain words beside the classical
baselines, per-case tables, the failure analysis (Dice against each case's foreground share and intensity,
the evaluated cases' intensities against the training cases'), overlays of the best and worst cases,
training curves, and the plan that configured the model (with why it normalises intensities as it does)."""

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
    "Failure analysis",
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
#: Images without a pixel size (plain PNGs) have their distances in pixels, and the report says so.
_PIXEL_LABELS = {**_LABELS, "hd95_mm": "HD95 (px)", "asd_mm": "ASD (px)"}
_PIXEL_MEANINGS = {
    **_MEANINGS,
    "hd95_mm": "95th-percentile boundary distance in pixels: the images record no pixel size (lower is better)",
    "asd_mm": "average boundary distance in pixels: the images record no pixel size (lower is better)",
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
    intensities: Sequence[np.ndarray] = (),
) -> Path:
    """Write the report; ``overlays`` is one ``(RGB image, caption)`` per case, in ``summary['per_case']`` order;
    ``intensities`` a sample of each evaluated case's intensities (channel 0) for the histogram."""
    model = settings.get("model", "?")
    where = f"HYBRID data (synthetic lesions in real images): {evaluated_on}" if hybrid else evaluated_on
    report = Report(title, f"{model} segmentation, evaluated on {where}")
    labels = _PIXEL_LABELS if summary.get("distance_unit") == "px" else _LABELS
    _summary_section(report, summary, plan, model, hybrid)
    _per_case_section(report, summary, labels)
    _failure_analysis(report, summary, fingerprint, intensities)
    _best_and_worst_section(report, summary, overlays)
    report.add_section("Training curves")
    if history:
        report.add_image(None, plots.training_curves(history, "dice", "max"))
    else:
        report.add_text("No training history in this run directory.", note=True)
    _plan_section(report, plan, fingerprint)
    report.add_section("Configuration")
    report.add_kv(None, {"segmentation": settings, "training": config.get("training", {}), "data": config.get("data")})
    report.add_section("Environment")
    report.add_kv(None, environment_info())
    return report.write(path)


def _summary_section(
    report: Report, summary: Mapping[str, Any], plan: Mapping[str, Any], model: str, hybrid: bool
) -> None:
    """Headline figures in plain words and as cards, the outcomes, and the model beside its baselines."""
    pixels = summary.get("distance_unit") == "px"
    labels, meanings, unit = (_PIXEL_LABELS, _PIXEL_MEANINGS, "pixels") if pixels else (_LABELS, _MEANINGS, "mm")
    report.add_summary("Summary")
    dims = f"{plan.get('spatial_dims')}D" + (" slice by slice" if plan.get("slice_axis") is not None else "")
    report.add_text(
        f"The {model} model ({dims}) outlined the structures of {summary.get('cases', 0)} case(s). "
        f"On average its outline overlapped the reference by a Dice score of {fixed(summary.get('dice'))} "
        f"and its boundary stayed within {fixed(summary.get('hd95_mm'), 1)} {unit} of the reference for 95% of "
        "boundary points. Green outlines below are the reference, red the model."
        + (" These figures were measured on HYBRID data (synthetic lesions in real images)." if hybrid else "")
    )
    report.add_stats(
        None,
        [
            (labels[name], fixed(summary.get(name), 3 if name in ("dice", "iou") else 1), meaning)
            for name, meaning in meanings.items()
        ],
    )
    _outcomes(report, summary)
    _baselines(report, summary, labels)


def _per_case_section(report: Report, summary: Mapping[str, Any], labels: Mapping[str, str]) -> None:
    report.add_section("Per-case results")
    cases = list(summary.get("per_case", []))
    report.add_table(
        None,
        [[c["case"], *(fixed(c.get(m)) for m in _MEANINGS), fixed(c.get("seconds"), 2)] for c in cases],
        ["case", *labels.values(), "seconds"],
    )
    per_class = summary.get("per_class", {})
    if len(per_class) > 1:
        report.add_table(
            "Per class",
            [[label, *(fixed(values.get(m)) for m in _MEANINGS)] for label, values in per_class.items()],
            ["label", *labels.values()],
        )


def _best_and_worst_section(
    report: Report, summary: Mapping[str, Any], overlays: Sequence[tuple[np.ndarray | None, str]]
) -> None:
    report.add_section("Best and worst cases")
    cases = list(summary.get("per_case", []))
    ranked = sorted(
        (i for i, (image, _) in enumerate(overlays) if image is not None),
        key=lambda i: -(cases[i].get("dice") if cases[i].get("dice") is not None else -1.0),
    )
    if not ranked:
        report.add_text("No cases to show.", note=True)
        return
    best = ranked[:OVERLAYS_PER_END]
    worst = [i for i in ranked[::-1][:OVERLAYS_PER_END] if i not in best]
    report.add_image("Best", plots.image_grid([overlays[i] for i in best], ncols=3, cell=3.2))
    if worst:
        report.add_image("Worst", plots.image_grid([overlays[i] for i in worst], ncols=3, cell=3.2))


def _plan_section(report: Report, plan: Mapping[str, Any], fingerprint: Mapping[str, Any] | None) -> None:
    """The plan, why it normalises intensities as it does, and the fingerprint it came from."""
    report.add_section("Plan")
    report.add_text(
        "The plan was derived from the training data's fingerprint (spacings, sizes, foreground intensities, "
        "class frequencies), as nnU-Net does, then overridden where the user asked."
    )
    if plan.get("normalization_reason"):
        report.add_text(
            f"Intensity normalisation: {plan.get('normalization')}, because {plan['normalization_reason']}."
        )
    if plan.get("normalization_warning"):
        report.add_text(f"Caveat: {plan['normalization_warning']}.", note=True)
    report.add_kv(None, dict(plan))
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


def _outcomes(report: Report, summary: Mapping[str, Any]) -> None:
    missed = int(summary.get("cases_with_missed_structure", 0))
    false_positive = int(summary.get("cases_with_false_positive", 0))
    if missed:
        report.add_text(
            f"In {missed} case(s) the model missed a structure entirely (infinite distance); those cases are "
            "left out of the mean distances but counted in the Dice (as 0).",
            note=True,
        )
    if false_positive:
        report.add_text(
            f"In {false_positive} case(s) the truth holds no structure but the model predicted one (a false "
            "positive): Dice 0, counted in the mean.",
            note=True,
        )


def _baselines(report: Report, summary: Mapping[str, Any], labels: Mapping[str, str]) -> None:
    """The model beside the classical baselines scored on the same cases, and the plain-words verdict."""
    baselines = summary.get("baseline") or {}
    if not baselines:
        note = summary.get("baseline_note") or "No classical baseline was scored."
        report.add_text(note, "Classical baselines", note=True)
        return
    rows = [["this model", *(fixed(summary.get(m), 3 if m in ("dice", "iou") else 1) for m in _MEANINGS)]]
    for name, values in baselines.items():
        rows.append([name, *(fixed(values.get(m), 3 if m in ("dice", "iou") else 1) for m in _MEANINGS)])
    fitted = summary.get("baseline_fitted")
    caption = (
        "global-threshold: one smoothed intensity threshold learned on the training cases"
        + (f" ({fitted})" if fitted else "")
        + "; otsu: Otsu's threshold of each image on its own, with the same polarity. Scored on the same cases."
    )
    report.add_verdict(summary.get("baseline_comparison"), "Classical baselines")
    report.add_table(None, rows, ["method", *(labels[m] for m in _MEANINGS)], caption=caption)
    if summary.get("baseline_note"):
        report.add_text(summary["baseline_note"], note=True)


def _failure_analysis(
    report: Report,
    summary: Mapping[str, Any],
    fingerprint: Mapping[str, Any] | None,
    intensities: Sequence[np.ndarray],
) -> None:
    """Where the model fails: Dice per case against foreground share and intensity (beside the best baseline),
    and the evaluated cases' intensities against the training cases' (a shift shows as displaced curves)."""
    report.add_section("Failure analysis")
    cases = list(summary.get("per_case", []))
    if not cases:
        report.add_text("No cases to analyse.", note=True)
        return
    best = (summary.get("baseline_comparison") or {}).get("baseline_name")
    figure = plots.dice_vs_case_properties(
        [_number(c.get("dice")) for c in cases],
        [_number(c.get("foreground_share")) for c in cases],
        [_number(c.get("mean_intensity")) for c in cases],
        baseline_dice=[_number((c.get("baseline_dice") or {}).get(best)) for c in cases] if best else None,
        names=[c["case"] for c in cases],
        baseline_label=best or "baseline",
    )
    report.add_image(
        "Dice against each case's foreground share and mean intensity",
        figure,
        caption="A model that fails only on cases with little foreground or unusual brightness shows it here.",
    )
    percentiles = (fingerprint or {}).get("intensity_percentiles")
    if percentiles and len(intensities):
        training = np.interp(np.linspace(0, 100, 20_001), np.arange(len(percentiles)), np.asarray(percentiles))
        shift = summary.get("shift")
        report.add_image(
            "Intensities of the training cases and of the evaluated cases",
            plots.intensity_histograms(
                training,
                list(intensities),
                test_label="evaluated cases" + (f" (shift {shift})" if shift else ""),
            ),
            caption="Training intensities from the run's fingerprint (every training case weighted equally); "
            "a model normalised on one distribution can fail on another.",
        )


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)
