"""A detection run's classical baseline: Laplacian-of-Gaussian blob detection with its scales and polarity tuned
on the run's training images (stored as ``baseline.json``, JSON, no pickle).

It runs on the images as the network sees them (the plan's grid and normalisation), so both detectors are
scored on the same voxels and the same intensity scale; only the network learned anything beyond blob shape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.apps.detection.cases import DetectionCase
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.detection import BlobDetector, fit_blob_detector
from medlearn.utils.atomic import write_text_atomic

BASELINE_FILE = "baseline.json"
#: Training images the blob detector is tuned on (a seeded subset beyond this: bounded time).
MAX_CASES = 64


@dataclass
class RunBaseline:
    """The fitted baseline of a run, or why there is none (shown in the JSON and the report)."""

    model: BlobDetector | None
    note: str | None = None


def fit_and_store(run_dir: Path, cases: Sequence[DetectionCase], max_candidates: int, *, seed: int = 0) -> RunBaseline:
    """Tune the blob detector on (up to :data:`MAX_CASES` of) the prepared training cases and keep it in the run;
    a baseline that cannot be fitted never costs the run its model: the reason becomes a note."""
    chosen = list(cases)
    if len(chosen) > MAX_CASES:
        picks = np.random.default_rng(seed).choice(len(chosen), MAX_CASES, replace=False)
        chosen = [chosen[i] for i in sorted(picks)]
    try:
        detector = fit_blob_detector(
            [item.case.image for item in chosen],
            [item.targets.spacing for item in chosen],
            [item.targets for item in chosen],
            max_candidates=max_candidates,
        )
    except MedlearnError as error:
        return RunBaseline(None, f"No classical baseline could be fitted: {error.problem}")
    write_text_atomic(Path(run_dir) / BASELINE_FILE, json.dumps(detector.to_dict(), indent=2) + "\n")
    return RunBaseline(detector)


def run_baseline(run_dir: Path) -> RunBaseline:
    """The run's stored baseline, or a note saying there is none."""
    path = Path(run_dir) / BASELINE_FILE
    if not path.is_file():
        return RunBaseline(None, "No classical baseline: the run has no baseline.json.")
    try:
        return RunBaseline(BlobDetector.from_dict(json.loads(path.read_text(encoding="utf-8"))))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise MedlearnError(f"not a blob-detector baseline ({error})", path) from None
