"""``classify predict``: calibrated class probabilities for files or folders, written as one CSV."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medlearn.apps.classification.model import load_classifier
from medlearn.data.files import find_image_files
from medlearn.data.preload import preload
from medlearn.data.records import Sample
from medlearn.utils.atomic import atomic_path


@dataclass
class PredictionResult:
    count: int
    skipped: list[tuple[str, str]]
    csv_path: Path


def predict_files(run_dir: Path, inputs: Sequence[Path], out: Path, *, strict: bool = False) -> PredictionResult:
    """Predict every readable image under ``inputs`` with a run's best model or an exported ``.onnx`` classifier;
    unreadable images are skipped and listed (unless strict)."""
    classifier = load_classifier(run_dir)
    files = find_image_files(inputs)
    loaded = preload([Sample(path=p) for p in files], classifier.preprocessing, strict=strict)
    probs = classifier.probabilities(loaded.arrays)
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "prediction", *(f"prob_{c}" for c in classifier.classes)])
        for sample, row in zip(loaded.samples, probs, strict=False):
            writer.writerow([sample.path, classifier.classes[int(row.argmax())], *(f"{p:.6f}" for p in row)])
    return PredictionResult(len(loaded), loaded.skipped, Path(out))
