"""``generate evaluate`` and the end-of-training evaluation: generated vs real images, offline.

The generated set has as many images as the real one, with the real set's class proportions when the
generator is conditional and the real images are labelled, so FID/KID compare like with like.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn.apps.common.run_info import data_slug, read_history
from medlearn.apps.generation.data import load_generation_images
from medlearn.apps.generation.features import feature_network
from medlearn.apps.generation.model import TrainedGenerator
from medlearn.data.sources import load_samples
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines import compare_to_baseline
from medlearn.evaluation.baselines.generation import PCAGaussian
from medlearn.evaluation.generation import evaluate_generated
from medlearn.utils.atomic import write_text_atomic

#: Fewer real images than this make FID and KID meaningless (covariances of hundreds of dimensions).
MIN_REAL_IMAGES = 20
BASELINE_FILE = "baseline.npz"
#: What the baseline is compared on (lower is better), and what of its evaluation the JSON keeps.
BASELINE_METRIC = "fid"
BASELINE_METRICS = ("fid", "kid", "precision", "recall", "ms_ssim")


def run_baseline(run_dir: Path) -> PCAGaussian | None:
    """The run's classical baseline (fitted at training), or None for a run made before baselines existed."""
    path = Path(run_dir) / BASELINE_FILE
    return PCAGaussian.load(path) if path.is_file() else None


def matching_labels(generator: TrainedGenerator, real_labels: Sequence[str | None]) -> np.ndarray | None:
    """Class indices for the generated set: the real images' own classes where the generator knows them."""
    if not generator.classes:
        return None
    known = [label for label in real_labels if label in generator.classes]
    if len(known) != len(real_labels):
        return generator.balanced_labels(len(real_labels))
    return np.array([generator.classes.index(label) for label in known], dtype=np.int64)


def evaluate_generator(
    generator: TrainedGenerator,
    real: np.ndarray,
    real_labels: Sequence[str | None],
    *,
    features=None,
    seed: int = 0,
    baseline: PCAGaussian | None = None,
) -> dict:
    """FID, KID, precision/recall, MS-SSIM (generated and real) of as many samples as real ``(N, C, S, S)`` [0, 1]
    images; ``features`` defaults to the fixed random network (see :mod:`medlearn.evaluation.feature_network`).
    With a ``baseline``, as many of its samples are measured the same way (JSON ``baseline``)."""

    if len(real) < MIN_REAL_IMAGES:
        raise MedlearnError(f"need at least {MIN_REAL_IMAGES} real images to compare distributions; got {len(real)}")
    started = time.perf_counter()
    labels = matching_labels(generator, real_labels)
    fake = generator.sample(len(real), labels, seed=seed)
    sampling_seconds = time.perf_counter() - started
    extractor = features or feature_network(generator.settings.features, generator.settings.channels)
    metrics = evaluate_generated(real, fake, extractor, seed=seed)
    metrics["baseline"], metrics["baseline_comparison"] = {}, None
    if baseline is not None:
        scores = evaluate_generated(real, baseline.sample(len(real), labels, seed=seed), extractor, seed=seed)
        metrics["baseline"] = {baseline.name: {key: scores.get(key) for key in BASELINE_METRICS}}
        comparison = compare_to_baseline(metrics, metrics["baseline"], BASELINE_METRIC, higher_is_better=False)
        metrics["baseline_comparison"] = comparison.to_dict("FID (lower is better)") if comparison else None
    metrics.update(
        model=generator.settings.model,
        objective=generator.model.objective,
        image_size=generator.settings.image_size,
        synthetic=True,
        sampling_seconds=round(sampling_seconds, 3),
    )
    return metrics


def evaluate_run(
    run_dir: str | Path,
    data: str,
    *,
    json_path: Path | None = None,
    features: str | None = None,
    seed: int = 0,
    report_path: Path | None = None,
    checkpoint: str = "best",
) -> tuple[dict, Path]:
    """``generate evaluate``: metrics of a run's generator against the real images of ``data``; JSON + report."""

    run_dir = Path(run_dir)
    generator = TrainedGenerator.from_run_dir(run_dir, checkpoint=checkpoint)
    samples = load_samples(data)
    real = load_generation_images(samples, generator.settings, [], show_progress=False)
    extractor = feature_network(features or generator.settings.features, generator.settings.channels)
    metrics = evaluate_generator(
        generator,
        real.arrays.astype(np.float32),
        [s.label for s in real.samples],
        features=extractor,
        seed=seed,
        baseline=run_baseline(run_dir),
    )
    metrics["evaluated_on"] = str(data)
    metrics["skipped"] = [{"path": p, "reason": r} for p, r in real.skipped]
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(metrics, indent=2, allow_nan=False))
    report_path = Path(report_path) if report_path else run_dir / f"evaluation-{data_slug(data)}.html"
    write_run_report(run_dir, report_path, generator, metrics, f"{len(real)} real images from {data}")
    return metrics, report_path


def report_after_training(
    run_dir: Path, val_images: np.ndarray, val_labels: Sequence[str | None], result, *, features=None
) -> tuple[Path, dict]:
    """After ``generate train``: evaluate on the held-out real images (when there are enough) and write the report;
    ``features``: the feature network training validated with (so a classifier run is not loaded again)."""
    generator = TrainedGenerator.from_run_dir(run_dir)
    training = {
        "epochs_run": result.epochs_run,
        "stopped_reason": result.stopped_reason,
        "minutes": sum(row.get("seconds", 0.0) for row in result.history) / 60.0,
    }
    metrics = None
    if len(val_images) >= MIN_REAL_IMAGES:
        metrics = evaluate_generator(
            generator, val_images, val_labels, features=features, baseline=run_baseline(run_dir)
        )
        metrics["evaluated_on"] = "held-out real training images"
        write_text_atomic(run_dir / "val_metrics.json", json.dumps(metrics, indent=2, allow_nan=False))
    report = write_run_report(
        run_dir, run_dir / "report.html", generator, metrics, "held-out real images of the training data", training
    )
    return report, {**training, "metrics": metrics}


def write_run_report(run_dir: Path, path: Path, generator: TrainedGenerator, metrics, evaluated_on, training=None):
    from medlearn.apps.generation.report import write_generation_report  # loads matplotlib

    samples_dir = run_dir / "samples"
    grids = sorted(samples_dir.glob("epoch_*.png")) if samples_dir.is_dir() else []
    shown = _spread(grids, 3)
    captions = [
        (p.read_bytes(), f"SYNTHETIC samples after epoch {int(p.stem.split('_')[1])} (same noise)") for p in shown
    ]
    summary_file = run_dir / "data_summary.json"
    return write_generation_report(
        path,
        title=f"Image synthesis: {run_dir.name}",
        settings=generator.settings.to_dict(),
        config=generator.config,
        grids=captions,
        history=read_history(run_dir),
        metrics=metrics,
        evaluated_on=evaluated_on,
        data_summary=json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else None,
        training=training,
    )


def _spread(items: list, count: int) -> list:
    """Up to ``count`` items evenly spread from first to last (the last always included)."""
    if len(items) <= count:
        return items
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in sorted(set(picks))]
