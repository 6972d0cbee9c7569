"""Classification chooses its intensity normalisation from the training images, records it, and applies it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from medlearn.apps.classification.data import choose_normalization
from medlearn.apps.classification.model import TrainedClassifier
from medlearn.apps.classification.settings import ClassifierSettings
from medlearn.cli.main import main
from medlearn.data.records import Sample
from medlearn.io import load


def _write_images(folder: Path, gains: list[float]) -> list[Sample]:
    """16-bit 'microscopy' images: a background at 300 plus one bright square for class 'yes', times a gain."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, gain in enumerate(gains):
        rng = np.random.default_rng(i)
        label = "yes" if i % 2 else "no"
        image = 300 + rng.normal(0, 20, (48, 48))
        if label == "yes":
            image[10:26, 12:28] += 900
        path = folder / f"img{i:02d}.png"
        Image.fromarray(np.clip(image * gain, 0, 65535).astype(np.uint16)).save(path)
        samples.append(Sample(path, label))
    return samples


def test_images_of_one_scale_get_the_dataset_scheme_and_different_gains_their_own(tmp_path):
    settings = ClassifierSettings(image_size=32)
    same = choose_normalization(_write_images(tmp_path / "same", [1.0] * 12), settings, seed=0)
    assert same.normalization == "dataset" and "share one intensity scale" in same.normalization_reason
    assert same.normalization_params["clip_low"][0] < 300 < 1200 < same.normalization_params["clip_high"][0]
    gains = [0.3, 1.0, 3.0, 0.5, 2.0, 1.5, 0.4, 2.5, 0.7, 1.2, 3.5, 0.8]
    varied = choose_normalization(_write_images(tmp_path / "varied", gains), settings, seed=0)
    assert varied.normalization == "image" and "scales differ" in varied.normalization_reason
    forced = choose_normalization(
        _write_images(tmp_path / "forced", gains), ClassifierSettings(normalization="dataset"), 0
    )
    assert forced.normalization == "dataset" and forced.normalization_reason.startswith("set by the user")


def test_the_dataset_scheme_keeps_absolute_intensities(tmp_path):
    """An image without the bright square is not stretched: its background stays where the others' is."""
    samples = _write_images(tmp_path, [1.0] * 12)
    settings = choose_normalization(samples, ClassifierSettings(image_size=32), seed=0)
    no, yes = (settings.preprocessing(load(s.path)) for s in samples[:2])
    assert abs(float(np.median(no)) - float(np.median(yes))) < 0.2  # same background level
    per_image = ClassifierSettings(image_size=32, normalization="image").preprocessing
    assert abs(float(np.median(per_image(load(samples[0].path)))) - float(np.median(no))) > 0.2


@pytest.mark.slow
def test_classify_train_records_the_choice_and_predict_applies_it(tmp_path):
    samples = _write_images(tmp_path / "images", [1.0] * 64)
    manifest = tmp_path / "train.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows((str(s.path), s.label) for s in samples)
    run = tmp_path / "run"
    args = ["--model", "cls-shallow", "--epochs", "1", "--batch-size", "16", "--image-size", "32", "--quiet"]
    assert main(["classify", "train", "--data", str(manifest), "--out", str(run), *args]) == 0
    settings = yaml.safe_load((run / "config.yaml").read_text())["classification"]
    assert settings["normalization"] == "dataset" and settings["normalization_params"]["clip_low"]
    classifier = TrainedClassifier.from_run_dir(run)
    assert classifier.preprocessing.normalization == "dataset"
    assert classifier.preprocessing.normalization_params == settings["normalization_params"]


def test_runs_written_before_the_choice_keep_their_per_image_scheme():
    assert ClassifierSettings.from_dict({"model": "cls-shallow"}).preprocessing.normalization == "image"
