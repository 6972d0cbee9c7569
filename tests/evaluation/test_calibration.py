"""Expected calibration error, reliability bins and temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.errors import MedlearnError
from medlearn.evaluation.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)


def test_ece_by_hand() -> None:
    # two cases at confidence 0.9 (one right: accuracy 0.5), two at 0.6 (both right: accuracy 1.0)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    expected = 0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6)
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(expected)
    bins = reliability_bins(probs, y, n_bins=10)
    assert bins.count.sum() == 4 and len(bins.edges) == 11
    assert bins.count[8] == 2 and bins.accuracy[8] == pytest.approx(0.5)  # (0.8, 0.9]
    assert bins.count[5] == 2 and bins.accuracy[5] == pytest.approx(1.0)  # (0.5, 0.6]
    assert np.isnan(bins.accuracy[0])


def test_perfectly_calibrated_data_has_small_ece() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    confidence = rng.uniform(0.5, 1.0, n)
    correct = rng.uniform(size=n) < confidence  # right exactly as often as claimed
    y = np.where(correct, 1, 0)
    probs = np.stack([1 - confidence, confidence], axis=1)
    assert expected_calibration_error(probs, y) < 0.02
    # the same predictions claiming certainty are badly calibrated
    assert expected_calibration_error(np.round(probs), y) > 0.2


def _calibrated_logits(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``z`` whose softmax is the true label distribution, and labels drawn from it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, k))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) < rng.uniform(size=(n, 1))).sum(axis=1)
    return z, np.minimum(y, k - 1)


def test_temperature_scaling_fixes_over_confidence() -> None:
    z_val, y_val = _calibrated_logits(3000, 3, seed=1)
    z_test, y_test = _calibrated_logits(3000, 3, seed=2)
    scale = 4.0  # the model's logits are four times too large: over-confident
    t = fit_temperature(scale * z_val, y_val)
    assert t == pytest.approx(scale, rel=0.15)
    raw = apply_temperature(scale * z_test, 1.0)
    calibrated = apply_temperature(scale * z_test, t)
    assert negative_log_likelihood(calibrated, y_test) < negative_log_likelihood(raw, y_test)
    assert expected_calibration_error(calibrated, y_test) < 0.5 * expected_calibration_error(raw, y_test)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), raw.argmax(axis=1))


def test_temperature_below_one_for_under_confident_logits() -> None:
    z, y = _calibrated_logits(3000, 2, seed=3)
    t = fit_temperature(z / 3.0, y)
    assert 0 < t < 0.5


def test_single_logit_binary_model_is_sigmoid() -> None:
    z = np.array([-2.0, 0.0, 3.0])
    probs = apply_temperature(z[:, None], 2.0)
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-z / 2.0)))
    assert fit_temperature(z, np.array([0, 1, 1])) > 0


def test_invalid_inputs() -> None:
    with pytest.raises(MedlearnError, match="positive"):
        apply_temperature(np.zeros((2, 2)), 0.0)
    with pytest.raises(MedlearnError, match="labels but"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(MedlearnError, match="NaN"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))
