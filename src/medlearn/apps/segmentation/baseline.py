"""A segmentation run's classical baselines: the smoothed global threshold learned on the run's training cases
(stored as ``baseline.json``, JSON, no pickle) and Otsu's threshold per image with the learned polarity.

Both are fitted and applied on the images as they are stored (original units and grid), the way a user would
threshold them, so they are comparable with any other tool and blind to the network's normalisation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.data.records import Sample
from medlearn.data.splits import Split
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.segmentation import ThresholdBaseline, fit_threshold_baseline
from medlearn.io import load
from medlearn.utils.atomic import write_text_atomic

BASELINE_FILE = "baseline.json"
#: Training cases the threshold is fitted on (a seeded subset beyond this: bounded memory and time).
MAX_CASES = 64


@dataclass
class RunBaseline:
    """The fitted baseline of a run, or why there is none (shown in the JSON and the report)."""

    model: ThresholdBaseline | None
    note: str | None = None


def fit_baseline(samples: Sequence[Sample], labels: Sequence[int], *, seed: int = 0) -> ThresholdBaseline:
    """The global threshold learned on (up to :data:`MAX_CASES` of) the training pairs, as stored."""
    chosen = list(samples)
    if len(chosen) > MAX_CASES:
        picks = np.random.default_rng(seed).choice(len(chosen), MAX_CASES, replace=False)
        chosen = [chosen[i] for i in sorted(picks)]
    cases = []
    for sample in chosen:
        image, mask = load(sample.path), load(sample.target)
        cases.append((image, np.rint(mask.array[0]).astype(np.int64)))
    return fit_threshold_baseline(cases, labels, seed=seed)


def store_baseline(run_dir: Path, baseline: ThresholdBaseline) -> Path:
    return write_text_atomic(Path(run_dir) / BASELINE_FILE, json.dumps(baseline.to_dict(), indent=2) + "\n")


def fit_and_store(run_dir: Path, samples: Sequence[Sample], labels: Sequence[int], *, seed: int = 0) -> RunBaseline:
    """Fit on the training pairs and keep it in the run; a baseline that cannot be fitted never costs the run its
    model or report: the reason becomes a note."""
    try:
        baseline = fit_baseline(samples, labels, seed=seed)
    except MedlearnError as error:
        return RunBaseline(None, f"No classical baseline could be fitted: {error.problem}")
    store_baseline(run_dir, baseline)
    return RunBaseline(baseline)


def run_baseline(run_dir: Path, labels: Sequence[int]) -> RunBaseline:
    """The run's stored baseline; a run made before baselines existed gets one fitted now on its training split
    (``split.csv``) and stored, or a note when its training files are gone."""
    path = Path(run_dir) / BASELINE_FILE
    if path.is_file():
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise MedlearnError(f"not valid JSON ({error})", path) from None
        return RunBaseline(ThresholdBaseline.from_dict(values, str(path)))
    split_file = Path(run_dir) / "split.csv"
    if not split_file.is_file():
        return RunBaseline(None, "No classical baseline: the run has neither baseline.json nor split.csv.")
    train = Split.from_csv(split_file).train
    try:
        fitted = fit_and_store(run_dir, train, labels)
    except MedlearnError as error:  # a training file moved or deleted since the run
        return RunBaseline(None, f"No classical baseline: its training cases cannot be read ({error}).")
    if fitted.model is not None:
        fitted.note = "The classical baseline was fitted now, on the run's training cases (split.csv)."
    return fitted
