from __future__ import annotations

import numpy as np
import pytest

from medlearn.evaluation.classification import bootstrap_intervals, classification_metrics


def _probs(positive_scores):
    scores = np.asarray(positive_scores, dtype=float)
    return np.stack([1 - scores, scores], axis=1)


def test_binary_metrics_match_a_hand_counted_confusion_matrix():
    # 3 positives: two found (0.9, 0.8), one missed (0.3); 5 negatives: one false alarm (0.7)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = _probs([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.4, 0.05])
    m = classification_metrics(y, p, positive=1)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(4 / 5)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # AUC = share of (positive, negative) pairs ranked correctly: 0.9 and 0.8 beat all 5 negatives (10 pairs),
    # 0.3 beats 0.2, 0.1 and 0.05 (3 pairs) -> 13 of 15
    assert m["auc"] == pytest.approx(13 / 15)
    assert m["n"] == 8


def test_choosing_the_other_positive_class_swaps_sensitivity_and_specificity():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = _probs([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.4, 0.05])
    a, b = classification_metrics(y, p, positive=1), classification_metrics(y, p, positive=0)
    assert a["sensitivity"] == pytest.approx(b["specificity"])
    assert a["specificity"] == pytest.approx(b["sensitivity"])
    assert a["auc"] == pytest.approx(b["auc"])


def test_three_classes_use_macro_averages():
    y = np.array([0, 1, 2, 2])
    p = np.eye(3)[[0, 1, 2, 0]]  # the last case (class 2) is called class 0
    m = classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["sensitivity"] == pytest.approx((1 + 1 + 0.5) / 3)  # macro recall


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_cases():
    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.integers(0, 2, n)
        scores = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, n), 0, 1)
        return y, _probs(scores)

    widths = []
    for n in (60, 1200):
        y, p = sample(n)
        point = classification_metrics(y, p)
        ci = bootstrap_intervals(y, p, n_boot=500, seed=0)
        for name in ("accuracy", "auc", "sensitivity", "specificity"):
            low, high = ci[name]
            assert low <= point[name] <= high, name
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
    assert widths[1] < widths[0] / 2


def test_bootstrap_is_reproducible_under_a_seed():
    y = np.array([0, 1] * 20)
    p = _probs(np.linspace(0.1, 0.9, 40))
    assert bootstrap_intervals(y, p, n_boot=200, seed=3) == bootstrap_intervals(y, p, n_boot=200, seed=3)
