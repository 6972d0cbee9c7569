"""The classical segmentation baselines: a learned global threshold and per-image Otsu, on real nuclei and MNI data."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest

from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.segmentation import (
    GLOBAL_THRESHOLD,
    OTSU,
    ThresholdBaseline,
    fit_threshold_baseline,
    otsu_per_image,
)
from medlearn.evaluation.segmentation import segmentation_metrics
from medlearn.io import load
from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage

TILE = 128

Cases = list[tuple[MedicalImage, np.ndarray]]


def _tiles(image: np.ndarray, mask: np.ndarray, columns: range) -> Cases:
    """128 px tiles of the given columns, each a MedicalImage placed where it lies in the full image."""
    cases = []
    for row in range(0, image.shape[1], TILE):
        for col in columns:
            affine = np.eye(4)
            affine[:2, 3] = (row, col)
            pixels = image[:, row : row + TILE, col : col + TILE]
            cases.append(
                (
                    image_from_affine(pixels, affine, source=f"tile {row},{col}"),
                    mask[row : row + TILE, col : col + TILE],
                )
            )
    return cases


@pytest.fixture(scope="module")
def nuclei(shared_data: Path) -> tuple[Cases, Cases]:
    """Real fluorescence nuclei (512x512 uint16): the left half's 8 tiles train, the right half's 8 are held out."""
    image = load(shared_data / "nuclei-dsb2018/img2d.tif").array
    mask = (load(shared_data / "nuclei-dsb2018/mask2d.tif").array[0] > 0).astype(np.uint8)
    return _tiles(image, mask, range(0, 256, TILE)), _tiles(image, mask, range(256, 512, TILE))


def _mean_dice(predict, cases: Cases, labels=(0, 1)) -> float:
    scores = [
        np.nanmean([v["dice"] for v in segmentation_metrics(predict(image), truth, image.spacing, labels).values()])
        for image, truth in cases
    ]
    return float(np.nanmean(scores))


def test_names() -> None:
    assert (GLOBAL_THRESHOLD, OTSU) == ("global-threshold", "otsu")


def test_learned_threshold_segments_held_out_nuclei(nuclei) -> None:
    train, test = nuclei
    baseline = fit_threshold_baseline(train, [0, 1])
    assert baseline.polarity == "brighter" and baseline.order == (0, 1)
    assert len(baseline.thresholds) == 1
    # the fit's own (histogram-based) training Dice is the Dice the metrics compute on its predictions
    assert baseline.train_dice == pytest.approx(_mean_dice(baseline.predict, train), abs=1e-6)
    held_out = _mean_dice(baseline.predict, test)
    assert held_out > 0.85  # measured 0.884; a wrong polarity or threshold scores far lower
    prediction = baseline.predict(test[0][0])
    assert prediction.shape == (TILE, TILE) and set(np.unique(prediction)) <= {0, 1}


def test_learned_threshold_is_near_the_best_on_training(nuclei) -> None:
    """No threshold of a fine grid beats the learned one on the training tiles (beyond candidate resolution), and a
    deliberately wrong threshold is clearly worse on the held-out tiles."""
    train, test = nuclei
    baseline = fit_threshold_baseline(train[:4], [0, 1], sigmas_mm=[1.0])
    assert baseline.sigma_mm == 1.0
    grid = np.linspace(10, 120, 56)
    brute = max(_mean_dice(dataclasses.replace(baseline, thresholds=(float(t),)).predict, train[:4]) for t in grid)
    assert _mean_dice(baseline.predict, train[:4]) >= brute - 0.005
    wrong = dataclasses.replace(baseline, thresholds=(baseline.thresholds[0] * 2.5,))
    assert _mean_dice(baseline.predict, test) > _mean_dice(wrong.predict, test) + 0.1


def test_polarity_is_learned_from_the_data(nuclei) -> None:
    train, test = nuclei
    inverted = [(dataclasses.replace(image, array=1000 - image.array.astype(np.int32)), mask) for image, mask in train]
    baseline = fit_threshold_baseline(inverted, [0, 1])
    assert baseline.polarity == "darker" and baseline.order == (1, 0)
    held_out = [(dataclasses.replace(image, array=1000 - image.array.astype(np.int32)), mask) for image, mask in test]
    assert _mean_dice(baseline.predict, held_out) > 0.85


def test_otsu_per_image_on_held_out_nuclei(nuclei) -> None:
    train, test = nuclei
    baseline = fit_threshold_baseline(train, [0, 1])
    assert _mean_dice(baseline.predict_otsu, test) > 0.85  # measured 0.886
    # the learned polarity matters: Otsu with the reversed class order labels the background as nuclei
    reversed_order = _mean_dice(lambda image: otsu_per_image(image, (1, 0), sigma_mm=baseline.sigma_mm), test)
    assert reversed_order < 0.4
    constant = dataclasses.replace(test[0][0], array=np.full((1, 8, 8), 7, dtype=np.uint16))
    assert not otsu_per_image(constant, (0, 1)).any()  # nothing to split: all background


def test_otsu_survives_an_intensity_scaling_that_breaks_the_global_threshold(nuclei) -> None:
    train, test = nuclei
    baseline = fit_threshold_baseline(train, [0, 1])
    scaled = [(dataclasses.replace(image, array=image.array * 3.0), mask) for image, mask in test]
    assert _mean_dice(baseline.predict_otsu, scaled) > 0.85
    assert _mean_dice(baseline.predict, scaled) < _mean_dice(baseline.predict_otsu, scaled) - 0.05


def test_json_round_trip_predicts_identically(nuclei) -> None:
    train, test = nuclei
    baseline = fit_threshold_baseline(train, [0, 1])
    stored = json.loads(json.dumps(baseline.to_dict()))
    assert stored["name"] == GLOBAL_THRESHOLD and stored["polarity"] == "brighter"
    restored = ThresholdBaseline.from_dict(stored)
    assert restored == baseline
    for image, _ in test[:3]:
        np.testing.assert_array_equal(restored.predict(image), baseline.predict(image))
    assert "training Dice" in restored.describe()
    with pytest.raises(MedlearnError, match="malformed"):
        ThresholdBaseline.from_dict({**stored, "thresholds": [1.0, 2.0]}, "baseline.json")
    with pytest.raises(MedlearnError, match="not a medlearn-segmentation-threshold-baseline"):
        ThresholdBaseline.from_dict({"format": "other"}, "baseline.json")


def _three_levels(seed: int, size: int = 48) -> tuple[MedicalImage, np.ndarray]:
    """Label 7 darkest, 0 (background) in between, 3 brightest: the order is not the label order."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), dtype=np.uint8)
    labels[5:20, 5:30] = 7
    labels[28:44, 10 + seed : 40] = 3
    level = {0: 50.0, 7: 10.0, 3: 90.0}
    pixels = np.vectorize(level.get)(labels) + rng.normal(0, 8, labels.shape)
    return image_from_affine(pixels[None].astype(np.float32), np.eye(4)), labels


def test_multi_class_thresholds_follow_median_intensity() -> None:
    train = [_three_levels(seed) for seed in range(3)]
    baseline = fit_threshold_baseline(train, [0, 3, 7])
    assert baseline.order == (7, 0, 3)
    assert baseline.polarity == "between"
    low, high = baseline.thresholds
    assert 20 < low < 40 and 60 < high < 80  # near the midpoints 30 and 70 between the levels
    image, truth = _three_levels(5)
    prediction = baseline.predict(image)
    assert set(np.unique(prediction)) == {0, 3, 7}
    scores = segmentation_metrics(prediction, truth, image.spacing, [0, 3, 7])
    assert min(v["dice"] for v in scores.values()) > 0.95
    assert fit_threshold_baseline(train, [0, 3, 7, 9]).order == (7, 0, 3)  # a class with no training voxel is left out
    otsu = baseline.predict_otsu(image)
    assert min(v["dice"] for v in segmentation_metrics(otsu, truth, image.spacing, [0, 3, 7]).values()) > 0.9


def test_multi_channel_picks_the_informative_channel(nuclei) -> None:
    train, test = nuclei
    rng = np.random.default_rng(0)

    def with_noise_channel(cases: Cases) -> Cases:
        return [
            (
                dataclasses.replace(image, array=np.concatenate([rng.normal(0, 50, image.array.shape), image.array])),
                mask,
            )
            for image, mask in cases
        ]

    baseline = fit_threshold_baseline(with_noise_channel(train[:4]), [0, 1])
    assert baseline.channel == 1
    assert _mean_dice(baseline.predict, with_noise_channel(test[:4])) > 0.85


def test_three_dimensional_volume(shared_data: Path) -> None:
    """White matter of the MNI152 T1 template (probability >= 50%), fitted on the left hemisphere's half and
    tested on the right one; the full 197x233x189 volume fits in seconds."""
    folder = shared_data / "mni152"
    t1 = load(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    wm = (load(folder / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array[0] >= 128).astype(np.uint8)
    half = t1.array.shape[1] // 2
    left = (dataclasses.replace(t1, array=t1.array[:, :half]), wm[:half])
    right = (dataclasses.replace(t1, array=t1.array[:, half:]), wm[half:])
    baseline = fit_threshold_baseline([left], [0, 1], sigmas_mm=[0.0, 1.0])
    assert baseline.polarity == "brighter"
    assert _mean_dice(baseline.predict, [right]) > 0.9  # measured 0.97
    started = time.perf_counter()
    fit_threshold_baseline([(t1, wm)], [0, 1], sigmas_mm=[0.0, 1.0])
    assert time.perf_counter() - started < 10  # about 0.5 s on 2 cores


def test_a_tiny_structure_keeps_all_its_voxels_in_the_sample() -> None:
    """Stratified sampling: 30 bright voxels among 400,000 still decide the threshold."""
    rng = np.random.default_rng(1)
    pixels = rng.normal(100, 5, (1, 400, 1000)).astype(np.float32)
    labels = np.zeros((400, 1000), dtype=np.uint8)
    labels[200, 100:130] = 1
    pixels[0, 200, 100:130] = 160
    baseline = fit_threshold_baseline([(image_from_affine(pixels, np.eye(4)), labels)], [0, 1], sigmas_mm=[0.0])
    assert 120 < baseline.thresholds[0] <= 160 and baseline.train_dice > 0.99


def test_sampled_counts_are_weighted_back_to_true_counts(nuclei) -> None:
    """With at most 2,000 counted voxels per class and tile, the fit still estimates the true training Dice."""
    train, test = nuclei
    baseline = fit_threshold_baseline(train, [0, 1], max_samples_per_class=2000)
    assert baseline.train_dice == pytest.approx(_mean_dice(baseline.predict, train), abs=0.01)
    assert _mean_dice(baseline.predict, test) > 0.85


def test_user_errors_are_medlearn_errors(nuclei) -> None:
    train, _ = nuclei
    image, mask = train[0]
    with pytest.raises(MedlearnError, match="no training cases"):
        fit_threshold_baseline([], [0, 1])
    with pytest.raises(MedlearnError, match="outside"):
        fit_threshold_baseline([(image, mask * 5)], [0, 1])
    with pytest.raises(MedlearnError, match="label map of shape"):
        fit_threshold_baseline([(image, mask[:10])], [0, 1])
    with pytest.raises(MedlearnError, match="two classes"):
        fit_threshold_baseline([(image, np.zeros_like(mask))], [0, 1])
    baseline = fit_threshold_baseline(train[:2], [0, 1])
    with pytest.raises(MedlearnError, match="channel"):
        dataclasses.replace(baseline, channel=2).predict(image)
