"""The enhancement report: PSNR/SSIM of the model against the degraded input and the classical
baselines in plain words, example triplets (degraded | restored | clean), per-image results, training
curves and the configuration."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.apps.common.run_info import environment_info
from medlearn.report import plots
from medlearn.report.html import Report, fixed
from medlearn.utils.atomic import write_bytes_atomic

SECTION_TITLES = ("Summary", "Comparison", "Examples", "Per-image results", "Training curves", "Configuration")
MAX_EXAMPLES = 6
_BASELINE_NAMES = {
    "nl_means": "non-local means",
    "bilateral": "bilateral filter",
    "tv": "total variation",
    "bicubic": "bicubic interpolation",
}

Example = tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str, Mapping[str, float], Mapping[str, float]]


def triplet_png(images: tuple[np.ndarray, np.ndarray, np.ndarray], name: str, metrics, degraded, sr: bool) -> bytes:
    """One row: degraded input (SR: its bicubic upsampling), model output, clean reference."""
    shown, restored, clean = images
    first = "bicubic of low-res input" if sr else "degraded input"
    return plots.image_grid(
        [
            (shown, f"{first}: {fixed(degraded.get('psnr'), 2)} dB"),
            (restored, f"restored: {fixed(metrics.get('psnr'), 2)} dB"),
            (clean, "clean reference"),
        ],
        ncols=3,
        title=name,
        cell=2.8,
    )


def _baseline_warning(report: Report, summary: Mapping[str, Any]) -> None:
    """A warning box in plain words when the model does not beat the best classical baseline (PSNR): then the
    classical method, given the true noise level, is at least as good and costs no training."""
    report.add_verdict(summary.get("baseline_comparison"))


def write_enhancement_report(
    path: str | Path,
    *,
    title: str,
    evaluated_on: str,
    summary: Mapping[str, Any],
    examples: Sequence[Example],
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]] = (),
    examples_dir: Path | None = None,
) -> Path:
    """Write the report; ``examples`` are ``((shown, restored, clean), name, metrics, degraded_metrics)``.

    With ``examples_dir`` the example triplets are also written there as PNG files.
    """
    sr = summary.get("task") == "sr"
    model = settings.get("model", "?")
    what = f"{summary.get('scale')}x super-resolution" if sr else f"denoising ({summary.get('noise')})"
    report = Report(title, f"{model}, {what}, evaluated on {evaluated_on}")
    _summary_section(report, summary, model, sr)
    _comparison_section(report, summary, model, sr)
    _examples_section(report, examples, sr, examples_dir)
    _per_image_section(report, summary)
    report.add_section("Training curves")
    if history:
        report.add_image(None, plots.training_curves(history, "psnr", "max"))
    else:
        report.add_text("No training history in this run directory.", note=True)
    report.add_section("Configuration")
    report.add_kv(None, {"enhancement": settings, "training": config.get("training", {}), "data": config.get("data")})
    report.add_kv("Environment", environment_info())
    return report.write(path)


def _summary_section(report: Report, summary: Mapping[str, Any], model: str, sr: bool) -> None:
    """What the model reached, against the input and the best classical method, in words and cards."""
    baselines = dict(summary.get("baselines") or {})
    best = summary.get("best_baseline")
    report.add_summary("Summary")
    text = (
        f"The {model} model restored {summary.get('n_slices', 0)} slice(s) degraded by {summary.get('noise')} "
        f"(seed {summary.get('seed')}). Its output reached a PSNR of {fixed(summary.get('psnr'), 2)} dB and an SSIM of "
        f"{fixed(summary.get('ssim'), 3)} against the clean image, where the "
        f"{'bicubic-upsampled' if sr else 'degraded'} input scored {fixed(summary['degraded'].get('psnr'), 2)} dB."
    )
    if best:
        gain = float(summary.get("gain_over_best_baseline_db") or 0.0)
        where = "behind" if gain >= 0 else "ahead of"
        text += (
            f" The best classical method, {_BASELINE_NAMES.get(best, best)}, scored "
            f"{fixed(baselines[best].get('psnr'), 2)} dB ({fixed(abs(gain), 2)} dB {where} the model)."
        )
    report.add_text(
        text + " PSNR (higher is better) measures pixel error on a log scale, +3 dB halving the squared error; "
        "SSIM (0 to 1) measures preserved local structure. Intensities are in the unit range the images were "
        "mapped to (CT window or 0.5-99.5 percentiles), so data_range is 1."
    )
    best_card = (
        [("best baseline PSNR", f"{fixed(baselines[best].get('psnr'), 2)} dB", _BASELINE_NAMES.get(best, best))]
        if best
        else []
    )
    report.add_stats(
        None,
        [
            ("model PSNR", f"{fixed(summary.get('psnr'), 2)} dB", f"SSIM {fixed(summary.get('ssim'), 3)}"),
            ("input PSNR", f"{fixed(summary['degraded'].get('psnr'), 2)} dB", "bicubic" if sr else "degraded"),
            *best_card,
        ],
    )
    _baseline_warning(report, summary)


def _comparison_section(report: Report, summary: Mapping[str, Any], model: str, sr: bool) -> None:
    """Every method's PSNR/SSIM side by side, and their run times."""
    baselines = dict(summary.get("baselines") or {})
    report.add_section("Comparison")
    rows = [
        [
            "degraded input" + (" (bicubic)" if sr else ""),
            *(fixed(summary["degraded"].get(m), 3) for m in ("psnr", "ssim")),
        ]
    ]
    rows += [[_BASELINE_NAMES.get(n, n), *(fixed(v.get(m), 3) for m in ("psnr", "ssim"))] for n, v in baselines.items()]
    rows.append([f"{model} (this model)", *(fixed(summary.get(m), 3) for m in ("psnr", "ssim"))])
    report.add_table(None, rows, ["method", "PSNR (dB)", "SSIM"])
    seconds = summary.get("seconds") or {}
    if seconds:
        report.add_table(
            "Run time",
            [[k if k == "model" else _BASELINE_NAMES.get(k, k), fixed(v, 2)] for k, v in seconds.items()],
            ["method", "seconds (all slices)"],
        )
    report.add_text(
        "The classical baselines were given the true noise level, which favours them; Rician noise is "
        "bias-corrected and Poisson noise variance-stabilised (Anscombe) for them.",
        note=True,
    )


def _examples_section(report: Report, examples: Sequence[Example], sr: bool, examples_dir: Path | None) -> None:
    report.add_section("Examples")
    if not examples:
        report.add_text("No slices to show.", note=True)
        return
    for number, (images, name, metrics, degraded) in enumerate(examples):
        png = triplet_png(images, name, metrics, degraded, sr)
        if examples_dir is not None:
            slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
            write_bytes_atomic(Path(examples_dir) / f"{number:02d}_{slug}.png", png)
        if number < MAX_EXAMPLES:
            report.add_image(None, png, caption=name)


def _per_image_section(report: Report, summary: Mapping[str, Any]) -> None:
    baselines = dict(summary.get("baselines") or {})
    report.add_section("Per-image results")
    report.add_table(
        None,
        [
            [
                Path(str(item.get("image"))).name,
                item.get("slices"),
                fixed(item.get("psnr"), 2),
                fixed(item.get("ssim"), 3),
                fixed((item.get("degraded") or {}).get("psnr"), 2),
                *(fixed((item.get("baselines") or {}).get(n, {}).get("psnr"), 2) for n in baselines),
            ]
            for item in summary.get("per_image", [])
        ],
        ["image", "slices", "PSNR", "SSIM", "input PSNR", *(f"{n} PSNR" for n in baselines)],
    )
