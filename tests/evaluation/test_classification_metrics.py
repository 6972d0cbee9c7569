"""Classification metrics against hand-computed cases, and the bootstrap intervals around them."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medlearn.errors import MedlearnError
from medlearn.evaluation.classification import (
    _weighted_metrics,
    bootstrap_intervals,
    classification_metrics,
    confusion,
    metrics_with_intervals,
    to_jsonable,
)

# Ten binary cases. Positives (class 1) score 0.9, 0.8, 0.6, 0.3; negatives 0.7, 0.55, 0.4, 0.2, 0.1, 0.05.
# At the arg-max decision (p >= 0.5 -> 1): TP = 3, FN = 1 (0.3), FP = 2 (0.7, 0.55), TN = 4.
# AUC by counting positive-negative pairs ranked correctly: 0.9 -> 6, 0.8 -> 6, 0.6 -> 5, 0.3 -> 3 = 20 of 24.
P_POS = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.55, 0.4, 0.2, 0.1, 0.05])
Y_BIN = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
PROBS_BIN = np.stack([1 - P_POS, P_POS], axis=1)


def test_binary_metrics_by_hand() -> None:
    m = classification_metrics(Y_BIN, PROBS_BIN, positive=1)
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert m["auc"] == pytest.approx(20 / 24)


def test_positive_class_zero_swaps_the_roles() -> None:
    m = classification_metrics(Y_BIN, PROBS_BIN, positive=0)
    assert m["sensitivity"] == pytest.approx(4 / 6)  # negatives of class 1 are now the positives
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx(4 / 5)  # 4 TN of 5 predicted class 0
    assert m["auc"] == pytest.approx(20 / 24)  # ranking by p0 is the exact reverse


def test_one_dimensional_probabilities_mean_positive_class() -> None:
    assert classification_metrics(Y_BIN, P_POS) == classification_metrics(Y_BIN, PROBS_BIN)


# Three classes, confusion (rows true, columns predicted): [[2,1,0],[0,3,1],[1,0,2]].
Y_MC = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
PRED_MC = np.array([0, 0, 1, 1, 1, 1, 2, 0, 2, 2])


def _probs_for(pred: np.ndarray, k: int) -> np.ndarray:
    p = np.full((len(pred), k), 0.2)
    p[np.arange(len(pred)), pred] = 1 - 0.2 * (k - 1)
    return p


def test_confusion_matrix_by_hand() -> None:
    expected = np.array([[2, 1, 0], [0, 3, 1], [1, 0, 2]])
    np.testing.assert_array_equal(confusion(Y_MC, PRED_MC, 3), expected)
    # a class that never occurs still gets its row and column
    assert confusion(np.array([0, 1]), np.array([0, 1]), 4).shape == (4, 4)


def test_multiclass_macro_metrics_by_hand() -> None:
    probs = _probs_for(PRED_MC, 3)
    m = classification_metrics(Y_MC, probs)
    recall = [2 / 3, 3 / 4, 2 / 3]
    precision = [2 / 3, 3 / 4, 2 / 3]  # column sums are 3, 4, 3
    specificity = [6 / 7, 5 / 6, 6 / 7]  # one false positive per class; 7, 6, 7 negatives
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall, strict=True)]
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["sensitivity"] == pytest.approx(np.mean(recall))
    assert m["balanced_accuracy"] == pytest.approx(np.mean(recall))
    assert m["precision"] == pytest.approx(np.mean(precision))
    assert m["specificity"] == pytest.approx(np.mean(specificity))
    assert m["f1"] == pytest.approx(np.mean(f1))
    assert m["auc"] == pytest.approx(roc_auc_score(Y_MC, probs, multi_class="ovr", average="macro"))


def test_undefined_metric_is_nan_and_json_null() -> None:
    m = classification_metrics(np.zeros(4, int), np.array([[0.9, 0.1]] * 4))
    assert math.isnan(m["sensitivity"]) and math.isnan(m["auc"])
    assert m["specificity"] == 1.0
    assert json.loads(json.dumps(to_jsonable(m)))["auc"] is None


def test_bad_inputs_raise_medlearn_errors() -> None:
    with pytest.raises(MedlearnError, match="labels but"):
        classification_metrics(Y_BIN[:5], PROBS_BIN)
    with pytest.raises(MedlearnError, match="labels must be in"):
        classification_metrics(Y_BIN + 1, PROBS_BIN)
    with pytest.raises(MedlearnError, match="NaN"):
        classification_metrics(Y_BIN, np.full((10, 2), np.nan))


def _synthetic(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.2
    logits = np.round(logits, 1)  # ties, which AUC must count as one half
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [2, 3])
def test_vectorised_resample_equals_metrics_of_resampled_data(k: int) -> None:
    y, p = _synthetic(120, k, seed=k)
    idx = np.random.default_rng(7).integers(0, len(y), len(y))
    weights = np.bincount(idx, minlength=len(y))[None, :].astype(float)
    fast = _weighted_metrics(weights, y, p, positive=1)
    slow = classification_metrics(y[idx], p[idx], positive=1)
    for name, values in fast.items():
        assert values[0] == pytest.approx(slow[name]), name


def test_interval_contains_estimate_and_narrows_with_more_data() -> None:
    widths = {}
    for n in (100, 1600):
        y, p = _synthetic(n, 2, seed=n)
        point = classification_metrics(y, p)
        ci = bootstrap_intervals(y, p, n_boot=500, seed=1)
        for name, (low, high) in ci.items():
            assert low <= point[name] <= high, (n, name)
        widths[n] = {name: high - low for name, (low, high) in ci.items()}
    for name in widths[100]:
        # four times the data: intervals about half as wide
        assert widths[1600][name] < 0.7 * widths[100][name], name


def test_bootstrap_is_reproducible_and_skips_single_class_resamples() -> None:
    y = np.zeros(30, int)
    y[0] = 1  # a resample misses the one positive about a third of the time
    p = np.linspace(0.05, 0.95, 30)
    ci = bootstrap_intervals(y, p, n_boot=400, seed=3)
    assert all(math.isfinite(v) for v in ci["auc"]) and 0 <= ci["auc"][0] <= ci["auc"][1] <= 1
    assert ci == bootstrap_intervals(y, p, n_boot=400, seed=3)
    assert ci != bootstrap_intervals(y, p, n_boot=400, seed=4)


def test_bootstrap_is_fast() -> None:
    y, p = _synthetic(500, 2, seed=0)
    start = time.perf_counter()
    bootstrap_intervals(y, p, n_boot=1000)
    assert time.perf_counter() - start < 2.0


def test_metrics_with_intervals_serialise_to_json() -> None:
    y, p = _synthetic(200, 2, seed=5)
    result = json.loads(json.dumps(to_jsonable(metrics_with_intervals(y, p, n_boot=200))))
    assert result["n"] == 200
    for name in ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "precision", "f1"):
        low, high = result[f"{name}_ci"]
        assert low <= result[name] <= high


def test_resampling_groups_widens_the_interval_when_images_come_in_copies() -> None:
    """Ten copies of each of 40 images: resampling images treats 400 cases as independent and gives too narrow an
    interval; resampling groups gives about the interval of the 40 distinct images."""
    from medlearn.evaluation.classification import bootstrap_intervals

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(40) % 2, 10)
    correct = np.repeat(rng.random(40) < 0.8, 10)
    probs = np.where((y == 1) == correct, 0.9, 0.1)
    groups = [f"g{i // 10}" for i in range(400)]
    by_image = bootstrap_intervals(y, probs, n_boot=400, seed=0)["accuracy"]
    by_group = bootstrap_intervals(y, probs, n_boot=400, seed=0, groups=groups)["accuracy"]
    distinct = bootstrap_intervals(y[::10], probs[::10], n_boot=400, seed=0)["accuracy"]
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(by_group) > 2 * width(by_image)
    assert width(by_group) == pytest.approx(width(distinct), rel=0.35)


def test_a_perfect_proportion_gets_an_exact_interval_not_a_zero_width_one() -> None:
    from medlearn.evaluation.classification import metrics_with_intervals

    y = np.array([0] * 214 + [1] * 30)
    probs = np.where(y == 1, 0.9, 0.1)
    probs[-3:] = 0.2  # three missed positives: sensitivity 27/30, specificity 214/214
    result = metrics_with_intervals(y, probs, n_boot=200)
    low, high = result["specificity_ci"]
    assert result["specificity"] == 1.0 and high == 1.0
    assert low == pytest.approx((0.025) ** (1 / 214), abs=1e-9)  # Clopper-Pearson lower bound at 214/214
    assert result["ci_method"]["specificity"] == "clopper-pearson"
    assert (
        result["ci_method"]["sensitivity"] == "bootstrap"
        and result["sensitivity_ci"][0] < 0.9 < result["sensitivity_ci"][1]
    )
