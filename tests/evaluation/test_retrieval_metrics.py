"""The retrieval metrics on hand-made rankings whose values are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.evaluation.retrieval import (
    average_precision_at_k,
    precision_at_k,
    recall_at_k,
    retrieval_metrics,
)


def test_precision_and_recall_at_k_count_the_relevant_items_in_the_first_k():
    ranked = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 1]], dtype=bool)
    np.testing.assert_allclose(precision_at_k(ranked, 1), [1.0, 0.0])
    np.testing.assert_allclose(precision_at_k(ranked, 5), [0.6, 0.2])
    np.testing.assert_allclose(precision_at_k(ranked, 10), [0.3, 0.1])  # missing ranks are misses
    np.testing.assert_allclose(recall_at_k(ranked, [6, 1], 5), [0.5, 1.0])


def test_average_precision_follows_its_stated_definition():
    # relevant at ranks 1, 3, 4 of 5, R = 3: (1/3) * (1/1 + 2/3 + 3/4)
    ranked = np.array([[1, 0, 1, 1, 0]], dtype=bool)
    assert average_precision_at_k(ranked, [3], k=10)[0] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # R larger than k: normalised by k, so a ranking with every slot relevant scores 1
    assert average_precision_at_k(np.ones((1, 10), bool), [50], k=10)[0] == pytest.approx(1.0)
    # one relevant item, found at rank 2: (1/1) * (1/2)
    assert average_precision_at_k(np.array([[0, 1, 0]], bool), [1], k=10)[0] == pytest.approx(0.5)
    # nothing relevant in the index: left out (NaN), not counted as 0 or 1
    assert np.isnan(average_precision_at_k(np.zeros((1, 10), bool), [0], k=10)[0])


def test_summary_leaves_out_queries_without_relevant_items_and_states_the_definition():
    ranked = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=bool)
    summary = retrieval_metrics(ranked, [2, 0, 4, 1])
    assert summary["queries"] == 4 and summary["queries_without_relevant"] == 1
    assert summary["precision_at_1"] == pytest.approx(0.5)
    assert summary["map_at_10"] == pytest.approx(np.mean([1.0, 1.0 / 4, 0.5]))
    assert "min(k, R)" in summary["map_definition"]
    low, high = summary["precision_at_1_ci"]
    assert 0.0 <= low <= summary["precision_at_1"] <= high <= 1.0
