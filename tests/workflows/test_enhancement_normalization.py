"""Enhancement chooses its [0, 1] scaling from the training files: one fixed range when they share a scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medlearn.apps.enhancement.settings import EnhancerSettings
from medlearn.apps.enhancement.slices import load_slices
from medlearn.apps.enhancement.train import choose_normalization
from medlearn.data.records import Sample


def _write(folder: Path, gains: list[float]) -> list[Sample]:
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, gain in enumerate(gains):
        rng = np.random.default_rng(i)
        image = 500 + rng.normal(0, 30, (64, 64))
        image[8 : 8 + 4 * (i + 1), 8:40] += 2000  # more or less bright structure per file
        path = folder / f"f{i}.png"
        Image.fromarray(np.clip(image * gain, 0, 65535).astype(np.uint16)).save(path)
        samples.append(Sample(path, "OT"))
    return samples


def test_files_of_one_scale_share_a_fixed_range_and_keep_their_relative_brightness(tmp_path):
    samples = _write(tmp_path / "same", [1.0] * 8)
    settings = choose_normalization(samples, EnhancerSettings())
    assert settings.normalization == "dataset" and settings.bounds is not None
    low, high = settings.bounds
    assert low < 500 < 2500 <= high + 100
    slices = load_slices(samples, bounds=settings.bounds)
    backgrounds = [float(np.median(s.image[40:, :])) for s in slices]
    assert max(backgrounds) - min(backgrounds) < 0.02  # the same tissue maps to the same unit value everywhere


def test_files_with_different_gains_keep_their_own_percentiles(tmp_path):
    samples = _write(tmp_path / "gains", [0.3, 1.0, 2.5, 0.6, 1.8, 0.4, 3.0, 1.2])
    settings = choose_normalization(samples, EnhancerSettings())
    assert settings.normalization == "image" and settings.bounds is None
    assert "scales differ" in settings.normalization_reason
