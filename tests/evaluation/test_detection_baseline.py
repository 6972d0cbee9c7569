"""The LoG blob baseline on synthetic Gaussian blobs: it finds them, picks the right polarity, works in 3D."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.detection import BlobDetector, _normalised_log, fit_blob_detector
from medlearn.evaluation.detection import Targets, competition_performance_metric, froc_curve, match_detections

SPACING_2D = (0.5, 0.5)


def _blobs(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
    sigmas_mm: list[float],
    amplitude: float,
) -> tuple[np.ndarray, Targets]:
    """Unit noise with Gaussian blobs of the given sizes (mm) at random places, kept apart and off the border.
    Hit radius 1.5 x the blob's sigma."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    image = rng.normal(0.0, 1.0, shape)
    centres: list[np.ndarray] = []
    margin = np.array([max(2, math.ceil(2.5 * max(sigmas_mm) / s)) for s in spacing])
    while len(centres) < len(sigmas_mm):
        candidate = rng.uniform(margin, np.array(shape) - 1 - margin)
        if all(np.linalg.norm((candidate - c) * spacing) > 4 * max(sigmas_mm) for c in centres):
            centres.append(candidate)
    for centre, sigma in zip(centres, sigmas_mm, strict=True):
        squared = (((grid - centre) * np.asarray(spacing)) ** 2).sum(axis=-1)
        image += amplitude * np.exp(-squared / (2 * sigma**2))
    # an arbitrary intensity scale per image: the detector standardises it away
    scale, offset = rng.uniform(0.5, 50.0), rng.uniform(-100, 100)
    targets = Targets(np.array(centres), 1.5 * np.array(sigmas_mm), spacing)
    return (offset + scale * image)[None].astype(np.float32), targets


def _set(seed: int, amplitude: float, count: int = 4) -> tuple[list[np.ndarray], list[Targets]]:
    rng = np.random.default_rng(seed)
    pairs = [_blobs(rng, (96, 96), SPACING_2D, [1.5, 2.5, 3.5], amplitude) for _ in range(count)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _cpm(detector: BlobDetector, images: list[np.ndarray], targets: list[Targets]) -> tuple[float, int]:
    matches = []
    for image, target in zip(images, targets, strict=True):
        points, scores, _ = detector.detect(image, target.spacing)
        matches.append(match_detections(points, scores, target))
    return competition_performance_metric(froc_curve(matches)), sum(m.detected for m in matches)


def test_bright_blobs_are_found():
    images, targets = _set(0, amplitude=6.0)
    detector = fit_blob_detector(images, [SPACING_2D] * len(images), targets)
    assert detector.polarity == 1
    assert detector.min_distance_mm == pytest.approx(1.5 * 1.5)
    assert detector.describe().startswith("LoG blobs, bright, sigma ")
    test_images, test_targets = _set(1, amplitude=6.0)
    cpm, detected = _cpm(detector, test_images, test_targets)
    assert detected == 12
    assert cpm > 0.9
    points, scores, radii = detector.detect(test_images[0], SPACING_2D)
    assert points.shape[1] == 2 and len(points) == len(scores) == len(radii) <= detector.max_candidates
    assert np.all(np.diff(scores) <= 0)
    # the three strongest candidates are the three blobs, with radii in the order of the blobs' sizes
    top = match_detections(points[:3], scores[:3], test_targets[0])
    assert top.detected == 3
    order = np.argsort(np.linalg.norm((points[:3, None] - test_targets[0].centres[None]) * 0.5, axis=2), axis=1)[:, 0]
    assert np.all(np.diff(radii[:3][np.argsort(order)]) >= 0)


def test_dark_blobs_choose_negative_polarity():
    images, targets = _set(2, amplitude=-6.0)
    detector = fit_blob_detector(images, [SPACING_2D] * len(images), targets)
    assert detector.polarity == -1
    assert "dark" in detector.describe()
    cpm, detected = _cpm(detector, *_set(3, amplitude=-6.0))
    assert detected == 12 and cpm > 0.9


def test_three_dimensional_anisotropic_blob():
    rng = np.random.default_rng(4)
    spacing = (2.5, 0.8, 0.8)
    pairs = [_blobs(rng, (24, 48, 48), spacing, [3.0], 8.0) for _ in range(3)]
    detector = fit_blob_detector([p[0] for p in pairs[:2]], [spacing] * 2, [p[1] for p in pairs[:2]])
    image, targets = pairs[2]
    points, scores, radii = detector.detect(image, spacing)
    assert points.shape[1] == 3
    match = match_detections(points[:1], scores[:1], targets)
    assert match.detected == 1
    assert 2.0 < radii[0] < 9.0  # a ball's radius near 1.5 x 3 mm, not in voxels


def test_log_in_millimetres_matches_gaussian_laplace_on_a_unit_grid():
    values = np.random.default_rng(5).normal(size=(32, 32)).astype(np.float32)
    ours = _normalised_log(values, (1.0, 1.0), 2.0)
    theirs = ndimage.gaussian_laplace(values, 2.0, mode="nearest") * -4.0
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_round_trip_and_malformed_dictionaries():
    detector = BlobDetector((1.0, 2.0, 4.0), -1, 1.5, max_candidates=50)
    values = json.loads(json.dumps(detector.to_dict()))
    assert BlobDetector.from_dict(values) == detector
    with pytest.raises(MedlearnError):
        BlobDetector.from_dict({"format": "something else"})
    with pytest.raises(MedlearnError, match="malformed"):
        BlobDetector.from_dict({**values, "polarity": 0})
    with pytest.raises(MedlearnError, match="malformed"):
        BlobDetector.from_dict({k: v for k, v in values.items() if k != "sigmas_mm"})


def test_fit_without_targets_is_refused():
    rng = np.random.default_rng(6)
    images = [rng.normal(size=(1, 32, 32)) for _ in range(2)]
    empty = Targets(np.zeros((0, 2)), np.zeros(0), (1.0, 1.0))
    with pytest.raises(MedlearnError, match="no object"):
        fit_blob_detector(images, [(1.0, 1.0)] * 2, [empty, empty])
    with pytest.raises(MedlearnError):
        fit_blob_detector(images, [(1.0, 1.0)], [empty])
    with pytest.raises(MedlearnError, match="spacing"):
        fit_blob_detector(images[:1], [(2.0, 1.0)], [empty])
