from __future__ import annotations

import numpy as np
import torch

from medlearn.evaluation.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)


def _calibrated_sample(n: int, rng):
    """Labels drawn with exactly the stated probabilities: a perfectly calibrated model."""
    confidence = rng.uniform(0.5, 1.0, n)
    predicted = rng.integers(0, 2, n)
    correct = rng.uniform(size=n) < confidence
    labels = np.where(correct, predicted, 1 - predicted)
    probs = np.zeros((n, 2))
    probs[np.arange(n), predicted] = confidence
    probs[np.arange(n), 1 - predicted] = 1 - confidence
    return probs, labels


def test_ece_is_small_for_calibrated_and_large_for_overconfident_probabilities():
    rng = np.random.default_rng(0)
    probs, labels = _calibrated_sample(20_000, rng)
    assert expected_calibration_error(probs, labels) < 0.02
    overconfident = np.where(probs > 0.5, 0.999, 0.001)
    assert expected_calibration_error(overconfident, labels) > 0.15


def test_temperature_scaling_repairs_overconfident_logits():
    rng = np.random.default_rng(1)
    probs, labels = _calibrated_sample(5_000, rng)
    logits = np.log(probs) * 4.0  # sharpened: the model claims far more confidence than it has
    temperature = fit_temperature(logits, labels)
    assert 3.0 < temperature < 5.0  # recovers the factor that sharpened the logits
    scaled = apply_temperature(logits, temperature)
    before = torch.softmax(torch.from_numpy(logits), 1).numpy()
    after = scaled if np.allclose(scaled.sum(1), 1) else torch.softmax(torch.from_numpy(scaled), 1).numpy()
    assert negative_log_likelihood(after, labels) < negative_log_likelihood(before, labels)
    assert expected_calibration_error(after, labels) < expected_calibration_error(before, labels) / 3
    assert (after.argmax(1) == before.argmax(1)).all()  # scaling never changes a decision
