"""Metrics of generated images: known values, orderings, the real-image MS-SSIM and the feature networks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from medlearn.apps.generation.features import classifier_features
from medlearn.data.preprocess import ClassificationPreprocessing
from medlearn.errors import MedlearnError
from medlearn.evaluation.feature_network import (
    FeatureExtractor,
    classifier_input,
    final_linear,
    random_projection_network,
)
from medlearn.evaluation.generation import (
    evaluate_generated,
    frechet_distance,
    frechet_distance_from_statistics,
    kernel_inception_distance,
    knn_radii,
    mmd2_unbiased,
    ms_ssim_diversity,
    ms_ssim_scales,
    precision_recall,
)

# ------------------------------------------------------------------------------------------- FID


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(200, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_diagonal_gaussians_is_the_closed_form():
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.5, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 1.0])
    expected = np.sum((m1 - m2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance_from_statistics(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)

    # From samples of those Gaussians: the estimate converges to the same value.
    rng = np.random.default_rng(1)
    a = m1 + rng.normal(size=(100_000, 3)) * np.sqrt(s1)
    b = m2 + rng.normal(size=(100_000, 3)) * np.sqrt(s2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_fid_with_full_covariances_matches_the_symmetric_formula():
    """Tr sqrtm(S1 S2) = Tr sqrtm(S1^½ S2 S1^½), computed here the independent (symmetric) way."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    root = linalg.sqrtm(s1).real
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    expected = np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None)))
    assert frechet_distance_from_statistics(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-6)


def test_fid_orders_a_shifted_set_after_a_resampled_one_and_survives_singular_covariances():
    rng = np.random.default_rng(3)
    real, resampled = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    shifted = rng.normal(size=(400, 8)) + 0.5
    assert frechet_distance(real, resampled) < 0.5 * frechet_distance(real, shifted)
    few = frechet_distance(rng.normal(size=(5, 20)), rng.normal(size=(6, 20)))  # rank-deficient covariances
    assert np.isfinite(few) and few >= 0


def test_fid_refuses_mismatched_features():
    with pytest.raises(MedlearnError, match="dimensions"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(MedlearnError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


# ------------------------------------------------------------------------------------------- KID


def test_mmd2_is_the_unbiased_estimate_written_out():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 3)) + 0.3
    d, m = 3, 7

    def k(a, b):
        return (a @ b / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_is_about_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(5)
    real, same = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    shifted = rng.normal(size=(300, 16)) + 0.5
    mean, std = kernel_inception_distance(real, same, subsets=20, subset_size=100, seed=0)
    assert abs(mean) < 0.05 and std > 0
    shifted_mean, _ = kernel_inception_distance(real, shifted, subsets=20, subset_size=100, seed=0)
    assert shifted_mean > 0.5 and shifted_mean > 10 * abs(mean)
    # subset_size is capped at the smaller set; the seed makes it reproducible
    small = kernel_inception_distance(real, shifted[:30], subsets=5, subset_size=1000, seed=1)
    assert small == kernel_inception_distance(real, shifted[:30], subsets=5, subset_size=1000, seed=1)


# ------------------------------------------------------------------------------ precision/recall


def _two_modes(n: int, rng, modes=(-1.0, 1.0)) -> np.ndarray:
    x = rng.normal(size=(n, 4))
    x[:, 0] += 10.0 * rng.choice(modes, size=n)
    return x


def test_knn_radii_match_sklearn():
    from sklearn.neighbors import NearestNeighbors

    x = np.random.default_rng(6).normal(size=(50, 3))
    distances, _ = NearestNeighbors(n_neighbors=4).fit(x).kneighbors(x)  # itself + 3 neighbours
    np.testing.assert_allclose(knn_radii(x, k=3, chunk=7), distances[:, 3], rtol=1e-9)


def test_precision_recall_of_one_mode_of_two():
    rng = np.random.default_rng(7)
    real = _two_modes(400, rng)
    subset = real[real[:, 0] < 0][:150]  # a subset of the real points, all in one mode
    precision, recall = precision_recall(real, subset, k=3)
    assert precision == 1.0
    assert recall < 0.55

    precision, recall = precision_recall(real, _two_modes(400, rng), k=3)  # same distribution
    assert precision > 0.85 and recall > 0.85

    precision, recall = precision_recall(real, _two_modes(200, rng, modes=(-1.0,)), k=3)  # fresh, one mode
    assert precision > 0.85 and recall < 0.55

    precision, _ = precision_recall(real, rng.normal(size=(100, 4)) + 50.0, k=3)  # nowhere near
    assert precision == 0.0


# ---------------------------------------------------------------------------------------- MS-SSIM


def _br35h_images(root: Path, count: int, size: int) -> np.ndarray:
    """``count`` real Br35H images (half yes, half no), grey, scaled to [0, 1], padded square to ``size``."""
    from medlearn.io import load

    preprocessing = ClassificationPreprocessing(image_size=size, channels=1, modality="OT")
    files = [f for label in ("no", "yes") for f in sorted((root / label).glob("*.jpg"))[: count // 2]]
    images = np.stack([preprocessing(load(f)) for f in files])
    return np.clip(images, 0.0, 1.0).astype(np.float32)  # the anti-aliased resize overshoots by ~1e-6


@pytest.fixture(scope="module")
def brains(br35h_root: Path) -> dict[int, np.ndarray]:
    return {size: _br35h_images(br35h_root, 24, size) for size in (64, 128)}


def test_ms_ssim_diversity_detects_collapse_on_real_images(brains):
    real = brains[64][:16]
    assert real.min() >= 0 and real.max() <= 1
    diverse = ms_ssim_diversity(real, pairs=200, seed=0)
    collapsed = ms_ssim_diversity(np.repeat(real[:1], 8, axis=0), pairs=200, seed=0)
    noise = np.random.default_rng(8).normal(scale=0.02, size=(8, *real.shape[1:])).astype(np.float32)
    nearly = ms_ssim_diversity(np.clip(real[:1] + noise, 0, 1), pairs=200, seed=0)
    assert collapsed == pytest.approx(1.0, abs=1e-4)
    assert diverse < 0.6
    assert diverse < nearly < collapsed


def test_ms_ssim_diversity_works_at_128_px_and_refuses_too_small_images(brains):
    value = ms_ssim_diversity(brains[128][:8], pairs=10, seed=1)
    assert 0 < value < 0.9
    assert value == ms_ssim_diversity(brains[128][:8], pairs=10, seed=1)
    small = torch.nn.functional.avg_pool2d(torch.from_numpy(brains[64][:4]), 2).numpy()
    with pytest.raises(MedlearnError, match="fewer scales"):
        ms_ssim_diversity(small, scales=4)
    assert ms_ssim_scales(32) == 3
    assert 0 < ms_ssim_diversity(small) == ms_ssim_diversity(small, scales=3) < 1
    with pytest.raises(MedlearnError, match=r"\[0, 1\]"):
        ms_ssim_diversity(brains[64][:4] * 255)


# -------------------------------------------------------------------------------- feature networks


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("cls-shallow", lambda m: m.classifier[-1]),
        ("resnet10", lambda m: m.fc),
        ("cls-multires", lambda m: m.classifier),  # not the auxiliary heads registered after it
    ],
)
def test_classifier_features_are_the_input_of_the_final_linear(name, head):
    from medlearn.models import create_model

    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=2)
    preprocessing = ClassificationPreprocessing(image_size=64, channels=1, modality="MR")
    extractor = FeatureExtractor.from_classifier(model, preprocessing)
    assert extractor.feature_layer is head(model)
    images = np.random.default_rng(9).random((3, 1, 72, 80)).astype(np.float32)
    features = extractor(images)
    assert features.shape == (3, head(model).in_features)
    np.testing.assert_array_equal(features, extractor(images))  # deterministic
    with torch.no_grad():
        logits = model(torch.from_numpy(classifier_input(images, preprocessing)))
        from_features = head(model)(torch.from_numpy(features).float())
    torch.testing.assert_close(from_features, logits, rtol=1e-4, atol=1e-4)


def test_final_linear_needs_a_linear_layer():
    with pytest.raises(MedlearnError, match="no nn.Linear"):
        final_linear(torch.nn.Conv2d(1, 2, 3), torch.zeros(1, 1, 8, 8))


def test_random_projection_network_is_seeded_and_maps_channels(brains):
    images = brains[64][:4]
    a, b = random_projection_network(seed=0), random_projection_network(seed=0)
    features = a(images)
    assert features.shape == (4, 256) and np.isfinite(features).all() and features.std() > 0
    np.testing.assert_array_equal(features, b(images))
    assert not np.allclose(features, random_projection_network(seed=1)(images))
    rgb = random_projection_network(seed=0, channels=3)(images)  # grey repeated to 3 channels
    assert rgb.shape == (4, 256)
    np.testing.assert_allclose(a(np.repeat(images, 3, axis=1)), features, rtol=1e-5, atol=1e-6)  # RGB -> luma
    assert "seed 0" in a.description and "random" in a.description


@pytest.fixture(scope="module")
def classifier_run(br35h_root: Path, tmp_path_factory) -> Path:
    """A 1-epoch cls-shallow run on 24 Br35H images at 64 px (a few seconds), trained through the CLI."""
    from medlearn.cli.main import main

    folder = tmp_path_factory.mktemp("generation_run")
    rows = [(str(f), label) for label in ("no", "yes") for f in sorted((br35h_root / label).glob("*.jpg"))[:12]]
    with open(folder / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    run = folder / "run"
    args = ["--model", "cls-shallow", "--epochs", "1", "--image-size", "64", "--modality", "MR", "--quiet"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(folder))  # the preprocessed-array cache goes to the tmp folder
        assert main(["classify", "train", "--data", str(folder / "train.csv"), "--out", str(run), *args]) == 0
    return run


def test_features_from_a_classifier_run(classifier_run: Path, brains):
    from medlearn.apps.classification.model import TrainedClassifier

    extractor = classifier_features(classifier_run)
    assert extractor.description == (
        f"penultimate layer of medlearn classifier run {classifier_run} (cls-shallow, 64 px)"
    )
    images = brains[128][:6]  # resized to the run's 64 px
    features = extractor(images)
    assert features.shape == (6, 50)
    np.testing.assert_array_equal(features, extractor(images))
    trained = TrainedClassifier.from_run_dir(classifier_run)  # the run's trained weights, not fresh ones
    with torch.no_grad():
        logits = trained.model(torch.from_numpy(classifier_input(images, trained.preprocessing)))
    torch.testing.assert_close(extractor.feature_layer(torch.from_numpy(features).float()), logits)
    with pytest.raises(MedlearnError, match="config.yaml"):
        classifier_features(classifier_run / "checkpoints")


# -------------------------------------------------------------------------------------- evaluator


def test_evaluate_generated_is_strict_json_and_ranks_a_collapsed_set_worse(brains):
    real, other = brains[64][:12], brains[64][12:24]
    extractor = random_projection_network(seed=0)
    noise = np.random.default_rng(10).normal(scale=0.02, size=other.shape).astype(np.float32)
    collapsed = np.clip(other[:1] + noise, 0, 1)
    options = {"kid_subsets": 10, "ms_ssim_pairs": 30}
    good = evaluate_generated(real, other, extractor, seed=0, **options)
    bad = evaluate_generated(real, collapsed, extractor, seed=0, **options)
    assert json.loads(json.dumps(good, allow_nan=False)) == good
    assert {"fid", "kid", "kid_std", "precision", "recall", "ms_ssim", "ms_ssim_real", "n_real", "n_fake"} <= set(good)
    assert good["feature_network"] == extractor.description
    assert (good["n_real"], good["n_fake"]) == (12, 12)
    assert good["ms_ssim_real"] == bad["ms_ssim_real"]  # the reference does not depend on the fake set
    assert bad["ms_ssim"] > 0.9 > good["ms_ssim"]
    assert bad["fid"] > good["fid"] and bad["kid"] > good["kid"]
    assert bad["recall"] < good["recall"]


def test_kid_spread_is_undefined_when_every_subset_is_the_whole_set():
    from medlearn.evaluation.generation import kernel_inception_distance

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(50, 8)), rng.normal(0.5, 1.0, size=(50, 8))
    _, whole = kernel_inception_distance(real, fake, subsets=10, subset_size=1000)
    _, sampled = kernel_inception_distance(real, fake, subsets=10, subset_size=20)
    assert np.isnan(whole) and sampled > 0


def test_seed_intervals_of_a_proportion_stay_within_0_and_1():
    from medlearn.evaluation.seed_statistics import mean_interval

    interval = mean_interval([0.96, 0.99, 1.0], bounds=(0.0, 1.0))
    assert interval["high"] == 1.0 and interval["clipped"] and interval["low"] < interval["mean"]
    assert mean_interval([0.96, 0.99, 1.0])["high"] > 1.0  # unbounded, as for a difference
