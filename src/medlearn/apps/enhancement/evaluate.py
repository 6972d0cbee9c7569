"""Evaluate an enhancement run: degrade clean test slices under a fixed seed, restore them with the model
and with the classical baselines, and compare all with the clean slice (PSNR, SSIM).

Protocol (recorded in the JSON): every test file is mapped to unit range as in training; 2D images are
one slice, volumes give up to ``max_slices`` content slices spread evenly along their thickest axis.
Each slice is degraded by the run's spec with a seed derived from ``(seed, file name, slice index)``,
so the same ``seed`` reproduces the same noisy inputs on any machine and in any CSV order. The model
restores the *whole* slice; the degraded input itself (for SR: its bicubic upsampling) and the
baselines (:mod:`medlearn.evaluation.classical_enhancement`, given the true noise level) are scored
the same way. Every image is clipped to [0, 1] before scoring; ``data_range`` is 1.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.common.run_info import data_slug, read_history
from medlearn.apps.enhancement.model import TrainedEnhancer
from medlearn.apps.enhancement.slices import EnhancementSlice, centre_crop, enhancement_samples, fixed_pair, load_slices
from medlearn.evaluation.baselines import compare_to_baseline
from medlearn.evaluation.classical_enhancement import DENOISE_BASELINES, bicubic, classical_denoise
from medlearn.evaluation.classification import to_jsonable
from medlearn.evaluation.image_quality import quality
from medlearn.utils.atomic import write_text_atomic

METRICS = ("psnr", "ssim")
DEFAULT_EVALUATION_SEED = 0
DEFAULT_MAX_SLICES = 8


@dataclass
class SliceResult:
    name: str
    image: str
    index: int | None
    metrics: dict[str, float]
    degraded: dict[str, float]
    baselines: dict[str, dict[str, float]]
    seconds: dict[str, float]
    #: (input as shown, restored, clean) in unit range, for figures
    images: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "slice": self.index,
            **self.metrics,
            "degraded": self.degraded,
            "baselines": self.baselines,
        }


def evaluate_slices(
    enhancer: TrainedEnhancer, slices, *, seed: int, baselines: bool = True, keep_images: bool = True
) -> list[SliceResult]:
    """Degrade each slice (fixed seed), restore it with the model and the baselines, score everything."""

    spec = enhancer.settings.spec
    results = []
    for item in slices:
        degraded, clean = fixed_pair(item, spec, seed)
        started = time.perf_counter()
        restored = np.clip(enhancer.restore(degraded), 0.0, 1.0)
        seconds = {"model": time.perf_counter() - started}
        shown = degraded if spec.scale == 1 else bicubic(degraded, clean.shape)
        scores: dict[str, dict[str, float]] = {}
        if baselines:
            names = DENOISE_BASELINES if spec.scale == 1 else ("bicubic",)
            for name in names:
                started = time.perf_counter()
                out = bicubic(degraded, clean.shape) if name == "bicubic" else classical_denoise(name, degraded, spec)
                seconds[name] = time.perf_counter() - started
                scores[name] = quality(np.clip(out, 0.0, 1.0), clean)
        results.append(
            SliceResult(
                name=item.name,
                image=str(item.source),
                index=item.index,
                metrics=quality(restored, clean),
                degraded=quality(np.clip(shown, 0.0, 1.0), clean),
                baselines=scores,
                seconds=seconds,
                images=(np.clip(shown, 0.0, 1.0), restored, clean) if keep_images else None,
            )
        )
    return results


def summarize(results: list[SliceResult], enhancer: TrainedEnhancer, *, seed: int) -> dict:
    """Means over slices, per-image means, the degraded input's and every baseline's scores."""
    settings = enhancer.settings
    summary: dict = {
        "task": settings.task,
        "noise": settings.degradation,
        "scale": settings.spec.scale,
        "model": settings.model,
        "seed": seed,
        "data_range": 1.0,
        "n_images": len({r.image for r in results}),
        "n_slices": len(results),
    }
    summary.update(_means([r.metrics for r in results]))
    summary["degraded"] = _means([r.degraded for r in results])
    names = list(results[0].baselines) if results else []
    summary["baselines"] = {name: _means([r.baselines[name] for r in results]) for name in names}
    finite = {n: v["psnr"] for n, v in summary["baselines"].items() if v["psnr"] is not None}
    if finite and summary.get("psnr") is not None:
        best = max(finite, key=finite.get)
        summary["best_baseline"] = best
        summary["gain_over_best_baseline_db"] = summary["psnr"] - finite[best]
    summary.update(baseline_keys(summary))
    seconds: dict[str, float] = defaultdict(float)
    for r in results:
        for name, value in r.seconds.items():
            seconds[name] += value
    summary["seconds"] = dict(seconds)
    by_image: dict[str, list[SliceResult]] = defaultdict(list)
    for r in results:
        by_image[r.image].append(r)
    summary["per_image"] = [
        {
            "image": image,
            "slices": len(items),
            **_means([r.metrics for r in items]),
            "degraded": _means([r.degraded for r in items]),
            "baselines": {name: _means([r.baselines[name] for r in items]) for name in names},
            "per_slice": [r.to_dict() for r in items] if items[0].index is not None else [],
        }
        for image, items in by_image.items()
    ]
    return to_jsonable(summary)


def baseline_keys(summary: dict) -> dict:
    """The keys every task's evaluation writes: ``baseline`` ({name: {"psnr", "ssim"}}, the same means as the
    older ``baselines``, kept because benchmarks read it) and ``baseline_comparison`` (the model against the best
    baseline on PSNR, with the plain-words sentence; None when no baseline was run)."""

    scores = {name: {metric: values.get(metric) for metric in METRICS} for name, values in summary["baselines"].items()}
    comparison = compare_to_baseline(summary, scores, "psnr")
    as_dict = None if comparison is None else comparison.to_dict("PSNR (dB)")
    return {"baseline": scores, "baseline_comparison": as_dict}


def _means(rows: list[dict[str, float]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for metric in METRICS:
        values = np.array([row[metric] for row in rows], dtype=float)
        finite = values[np.isfinite(values)]
        out[metric] = float(finite.mean()) if finite.size else None
    return out


def select_slices(slices, max_slices: int | None) -> list:
    """At most ``max_slices`` slices per file, spread evenly over its content slices (all when None)."""
    by_file: dict[str, list] = defaultdict(list)
    for item in slices:
        by_file[str(item.source)].append(item)
    chosen = []
    for items in by_file.values():
        if max_slices is None or len(items) <= max_slices:
            chosen += items
        else:
            picks = np.unique(np.linspace(0, len(items) - 1, max_slices).round().astype(int))
            chosen += [items[int(i)] for i in picks]
    return chosen


def evaluate_run(
    run_dir: Path,
    data: str,
    *,
    json_path: Path | None = None,
    report_path: Path | None = None,
    seed: int = DEFAULT_EVALUATION_SEED,
    max_slices: int | None = DEFAULT_MAX_SLICES,
    baselines: bool = True,
) -> tuple[dict, Path | None]:
    """``enhance evaluate``: the run's best model vs. the degraded input and the baselines on ``data``."""

    run_dir = Path(run_dir)
    enhancer = TrainedEnhancer.from_run_dir(run_dir)
    settings = enhancer.settings
    samples = enhancement_samples(data)
    slices = load_slices(
        samples,
        modality=settings.modality,
        ct_window=settings.ct_window,
        min_content=settings.min_content,
        bounds=settings.bounds,  # the run's fixed intensity range when its training files shared one scale
    )
    results = evaluate_slices(enhancer, select_slices(slices, max_slices), seed=seed, baselines=baselines)
    summary = summarize(results, enhancer, seed=seed)
    summary["evaluated_on"] = str(data)
    summary["max_slices_per_volume"] = max_slices
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(summary, indent=2) + "\n")
    if report_path is None:
        report_path = run_dir / f"evaluation-{data_slug(str(data))}.html"
    _write_report(
        report_path,
        enhancer,
        results,
        summary,
        title=f"Evaluation of {run_dir.name} on {Path(str(data)).name}",
        evaluated_on=f"{summary['n_slices']} slice(s) of {summary['n_images']} file(s) from {data}",
        history=read_history(run_dir),
        examples_dir=None,
    )
    return summary, report_path


def report_after_training(run_dir: Path, fit_result, slices, evaluated_on: str) -> tuple[Path | None, dict]:
    """Evaluate the best checkpoint on the validation slices (as validated), write report.html and examples/."""

    run_dir = Path(run_dir)
    enhancer = TrainedEnhancer.from_run_dir(run_dir)
    settings = enhancer.settings
    seed = int((enhancer.config or {}).get("training", {}).get("seed", 0))
    count = max(1, settings.val_slices)
    picks = np.unique(np.linspace(0, len(slices) - 1, min(count, len(slices))).round().astype(int))
    chosen = [
        EnhancementSlice(centre_crop(s.image, settings.val_max_size, settings.spec.scale), s.source, s.index, s.axis)
        for s in (slices[int(i)] for i in picks)
    ]
    results = evaluate_slices(enhancer, chosen, seed=seed)
    summary = summarize(results, enhancer, seed=seed)
    summary["evaluated_on"] = evaluated_on
    write_text_atomic(run_dir / "val_metrics.json", json.dumps(summary, indent=2) + "\n")
    report = _write_report(
        run_dir / "report.html",
        enhancer,
        results,
        summary,
        title=f"Enhancement run {run_dir.name}",
        evaluated_on=f"{len(results)} slice(s) of {evaluated_on} (centre-cropped to {settings.val_max_size} px)",
        history=list(fit_result.history),
        examples_dir=run_dir / "examples",
    )
    return report, summary


def _write_report(path: Path, enhancer, results, summary, *, title, evaluated_on, history, examples_dir) -> Path:
    from medlearn.apps.enhancement.report import write_enhancement_report  # loads matplotlib

    return write_enhancement_report(
        path,
        title=title,
        evaluated_on=evaluated_on,
        summary=summary,
        examples=[(r.images, r.name, r.metrics, r.degraded) for r in results if r.images is not None],
        settings=enhancer.settings.to_dict(),
        config=enhancer.config or {},
        history=history,
        examples_dir=examples_dir,
    )
