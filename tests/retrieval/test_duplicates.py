"""Embedding near-duplicates: the threshold calibrated on the perceptual-hash duplicates of the same index."""

from __future__ import annotations

import numpy as np

from medlearn.apps.retrieval.duplicates import DEFAULT_MIN_SIMILARITY, calibrated_min_similarity, embedding_duplicates
from medlearn.apps.retrieval.index import Entry, VectorIndex

EMBEDDER = {"name": "histogram", "version": "1"}


def _index(copies: int, spread: float) -> VectorIndex:
    """``copies`` hash-grouped pairs (a vector and a slightly turned copy) among unrelated vectors."""
    rng = np.random.default_rng(0)
    vectors, entries = [], []
    for i in range(copies):
        base = rng.normal(size=16)
        vectors += [base, base + spread * rng.normal(size=16)]
        entries += [Entry(f"a{i}.png", group=f"dup:{i}"), Entry(f"b{i}.png", group=f"dup:{i}")]
    for i in range(20):
        vectors.append(rng.normal(size=16))
        entries.append(Entry(f"other{i}.png", group=f"patient{i // 2}"))  # patients are no evidence of copies
    return VectorIndex(np.array(vectors), entries, EMBEDDER)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_the_threshold_is_where_hash_confirmed_copies_dominate():
    index = _index(copies=8, spread=0.1)
    threshold, reason = calibrated_min_similarity(index)
    copies = [_cosine(index.vectors[2 * i], index.vectors[2 * i + 1]) for i in range(8)]
    # the unrelated vectors are far apart: every copy pair is above the threshold, no unrelated pair is
    assert min(copies) - 1e-5 <= threshold <= min(copies) and "calibrated" in reason
    found = embedding_duplicates(index, threshold)
    assert sum(pair.same_group for pair in found) == 8 and not [pair for pair in found if not pair.same_group]


def test_too_few_confirmed_copies_fall_back_to_the_default():
    threshold, reason = calibrated_min_similarity(_index(copies=2, spread=0.1))
    assert threshold == DEFAULT_MIN_SIMILARITY and "only 2" in reason
