"""The image-synthesis report: what was trained, samples at the end and along the way, the distances to
real images and which feature network they were measured with, and a mode-collapse check in plain words.

Every page says SYNTHETIC: these images come from a model, not from a patient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medlearn.evaluation.generation import mode_collapse
from medlearn.report import plots
from medlearn.report.html import Report, fixed

SECTION_TITLES = ("Summary", "Samples", "Distances to real images", "Training curves", "Data", "Configuration")

_MEANINGS = {
    "fid": ("FID", "Frechet distance between real and generated feature distributions (lower is better)"),
    "kid": ("KID", "kernel distance, unbiased for small sets (lower is better, 0 = same distribution)"),
    "precision": ("precision", "share of generated images that look like some real image (fidelity)"),
    "recall": ("recall", "share of real images the generator can produce something like (coverage)"),
    "ms_ssim": ("MS-SSIM", "mean similarity between pairs of generated images (near 1 = mode collapse)"),
    "ms_ssim_real": ("MS-SSIM real", "the same between pairs of real images, the reference"),
}


def write_generation_report(
    path: str | Path,
    *,
    title: str,
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
    grids: Sequence[tuple[bytes, str]],
    history: Sequence[Mapping[str, Any]] = (),
    metrics: Mapping[str, Any] | None = None,
    evaluated_on: str | None = None,
    data_summary: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write the report; ``grids`` are PNG sample grids with captions (the last one is the final model)."""
    model = settings.get("model", "?")
    report = Report(title, f"SYNTHETIC images from a {model} generator ({settings.get('image_size')} px)")
    report.add_summary("Summary")
    classes = (config.get("classes") or []) if config else []
    kind = f"class-conditional ({', '.join(classes)})" if classes else "unconditional"
    lines = [
        f"A {kind} {model} generator was trained to produce {settings.get('image_size')}x{settings.get('image_size')} "
        f"images like those of {config.get('data', {}).get('source', 'the training data')}. The images below are "
        "SYNTHETIC: they were made by the model and show no patient."
    ]
    if training:
        lines.append(
            f"Training ran {training.get('epochs_run')} epoch(s) in {fixed(training.get('minutes'), 1)} minutes "
            f"({training.get('stopped_reason')})."
        )
    report.add_text(" ".join(lines))
    if metrics:
        report.add_stats(
            None,
            [
                (label, fixed(metrics.get(key)), meaning)
                for key, (label, meaning) in _MEANINGS.items()
                if key in metrics
            ],
        )

        report.add_text(mode_collapse(metrics)[1].capitalize() + ".", note=True)
        _baseline_part(report, metrics)

    report.add_section("Samples")
    for png, caption in grids:
        report.add_image(None, png, caption=caption, alt=caption, width="min(100%, 640px)")
    if not grids:
        report.add_text("No sample grids in this run directory.", note=True)

    report.add_section("Distances to real images")
    if metrics:
        report.add_text(
            f"Measured against {evaluated_on or 'held-out real images'} ({metrics.get('n_real')} real, "
            f"{metrics.get('n_fake')} generated images). Features: {metrics.get('feature_network')}. Distances "
            "depend on the feature network: compare only numbers measured with the same one."
        )
        report.add_table(
            None,
            [[label, fixed(metrics.get(key), 4), meaning] for key, (label, meaning) in _MEANINGS.items()],
            ["metric", "value", "meaning"],
        )
    else:
        report.add_text("Run 'medlearn generate evaluate RUN_DIR --data REAL.csv' to measure them.", note=True)

    report.add_section("Training curves")
    if history:
        has_fid = any("val_fid" in row for row in history)
        report.add_image(
            None,
            plots.training_curves(history, "fid", "min") if has_fid else plots.training_curves(history, "loss", "min"),
        )
    else:
        report.add_text("No training history in this run directory.", note=True)

    report.add_section("Data")
    if data_summary:
        rows = [
            [part, name, count] for part in ("train", "val") for name, count in (data_summary.get(part) or {}).items()
        ]
        report.add_table(None, rows, ["part", "class", "images"])
        skipped = data_summary.get("skipped") or []
        if skipped:
            report.add_table("Skipped files", [[s["path"], s["reason"]] for s in skipped], ["file", "reason"])

    report.add_section("Configuration")
    report.add_kv("Generation settings", settings)
    if config.get("training"):
        report.add_kv("Training settings", config["training"])
    return report.write(path)


def _baseline_part(report: Report, metrics: Mapping[str, Any]) -> None:
    """The generator beside the classical baseline (a Gaussian in PCA space per class), measured the same way."""
    baselines = metrics.get("baseline") or {}
    if not baselines:
        return
    rows = [["this generator", *(fixed(metrics.get(k)) for k in ("fid", "kid", "precision", "recall", "ms_ssim"))]]
    for name, values in baselines.items():
        rows.append([name, *(fixed(values.get(k)) for k in ("fid", "kid", "precision", "recall", "ms_ssim"))])
    report.add_verdict(metrics.get("baseline_comparison"), "Classical baseline")
    report.add_table(
        None,
        rows,
        ["method", "FID", "KID", "precision", "recall", "MS-SSIM"],
        caption="pca-gaussian: the mean image plus random amounts of its leading principal components, per class, "
        "fitted on the training images; as many of its samples as real images, measured with the same features.",
    )
