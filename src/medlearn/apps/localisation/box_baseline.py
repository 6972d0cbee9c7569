"""A box run's classical baseline: the intensity-threshold box. A global threshold per structure learned on the
training volumes (the segmentation baseline, :mod:`medlearn.evaluation.baselines.segmentation`, fitted on the
structures' masks or filled boxes, stored as ``baseline.json``), then the box around the largest connected region
the threshold gives each structure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from medlearn.apps.localisation.boxes import ImageBoxes
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.segmentation import ThresholdBaseline, fit_threshold_baseline
from medlearn.io.image import MedicalImage
from medlearn.utils.atomic import write_text_atomic

BASELINE_FILE = "baseline.json"
NAME = "threshold-box"
#: Training volumes the threshold is fitted on (a seeded subset beyond this).
MAX_CASES = 32


@dataclass
class BoxBaseline:
    threshold: ThresholdBaseline | None
    note: str | None = None
    name: str = NAME

    def describe(self) -> str:
        return "" if self.threshold is None else f"box of the largest region of a {self.threshold.describe()}"

    def boxes(self, image: MedicalImage, structures: Sequence[str]) -> dict[str, np.ndarray | None]:
        """Each structure's box on ``image``'s grid (None where the threshold marks nothing)."""
        labels = self.threshold.predict(image)
        out: dict[str, np.ndarray | None] = {}
        for index, name in enumerate(structures):
            regions, count = ndimage.label(labels == index + 1)
            if not count:
                out[name] = None
                continue
            sizes = ndimage.sum_labels(np.ones(labels.shape), regions, np.arange(1, count + 1))
            where = np.argwhere(regions == int(np.argmax(sizes)) + 1)
            out[name] = np.concatenate([where.min(axis=0), where.max(axis=0)]).astype(np.float64)
        return out


def fit_and_store(
    run_dir: Path, items: Sequence[ImageBoxes], structures: Sequence[str], *, seed: int = 0
) -> BoxBaseline:
    chosen = list(items)
    if len(chosen) > MAX_CASES:
        picks = np.random.default_rng(seed).choice(len(chosen), MAX_CASES, replace=False)
        chosen = [chosen[i] for i in sorted(picks)]
    labels = list(range(len(structures) + 1))
    try:
        threshold = fit_threshold_baseline(
            [(item.image, item.label_map(structures)) for item in chosen], labels, seed=seed
        )
    except MedlearnError as error:
        return BoxBaseline(None, f"No classical baseline could be fitted: {error.problem}")
    write_text_atomic(Path(run_dir) / BASELINE_FILE, json.dumps(threshold.to_dict(), indent=2) + "\n")
    return BoxBaseline(threshold)


def run_baseline(run_dir: Path) -> BoxBaseline:
    path = Path(run_dir) / BASELINE_FILE
    if not path.is_file():
        return BoxBaseline(None, "No classical baseline: the run has no baseline.json.")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise MedlearnError(f"not valid JSON ({error})", path) from None
    return BoxBaseline(ThresholdBaseline.from_dict(values, str(path)))
