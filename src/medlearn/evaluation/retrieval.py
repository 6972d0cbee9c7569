"""How good a ranking of retrieved images is, with every definition stated (published medical CBIR tables normalise
mAP@k in ways that inflate it, so ours says exactly what it computes).

For one query, ``rel(r)`` is 1 when the item at rank ``r`` (1-based) is relevant (same label by default, or same
group for instance retrieval) and ``R`` is the number of relevant items in the index (after the query's own
duplicate group is left out):

- ``precision@k`` = (1/k) * sum_{r<=k} rel(r);
- ``recall@k`` = (1/R) * sum_{r<=k} rel(r) (queries with R = 0 left out);
- ``AP@k`` = (1/min(k, R)) * sum_{r<=k} precision@r * rel(r) (queries with R = 0 left out), so a perfect ranking
  scores 1 even when fewer than k relevant items exist; ``mAP@k`` is its mean over queries.

Means come with 95% percentile-bootstrap intervals over queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The definition written into every JSON and report, word for word.
MAP_DEFINITION = (
    "mAP@k: mean over queries with at least one relevant item of (1/min(k, R)) * sum over ranks r <= k of "
    "precision@r * rel(r), R = relevant items in the index (the query's own duplicate group excluded)"
)


def precision_at_k(relevant: np.ndarray, k: int) -> np.ndarray:
    """Per query, ``relevant`` ``(queries, ranks)`` booleans in rank order; ranks beyond the list count as misses."""
    hits = np.asarray(relevant, dtype=bool)[:, :k]
    return hits.sum(axis=1) / float(k)


def recall_at_k(relevant: np.ndarray, total_relevant: Sequence[int], k: int) -> np.ndarray:
    """Per query (NaN where ``R`` is 0)."""
    hits = np.asarray(relevant, dtype=bool)[:, :k].sum(axis=1).astype(float)
    total = np.asarray(total_relevant, dtype=float)
    return np.divide(hits, total, out=np.full_like(hits, np.nan), where=total > 0)


def average_precision_at_k(relevant: np.ndarray, total_relevant: Sequence[int], k: int = 10) -> np.ndarray:
    """Per query AP@k as defined in the module docstring (NaN where ``R`` is 0)."""
    hits = np.asarray(relevant, dtype=bool)[:, :k].astype(float)
    ranks = np.arange(1, hits.shape[1] + 1, dtype=float)
    precision_at_rank = np.cumsum(hits, axis=1) / ranks
    total = np.asarray(total_relevant, dtype=float)
    denominator = np.minimum(float(k), total)
    summed = (precision_at_rank * hits).sum(axis=1)
    return np.divide(summed, denominator, out=np.full_like(summed, np.nan), where=denominator > 0)


def bootstrap_interval(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> list[float | None]:
    """95% percentile-bootstrap interval of the mean of the finite values (``[None, None]`` below 3 of them)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size < 3:
        return [None, None]
    rng = np.random.default_rng(seed)
    means = finite[rng.integers(0, finite.size, (n_boot, finite.size))].mean(axis=1)
    return [float(v) for v in np.percentile(means, [2.5, 97.5])]


def retrieval_metrics(relevant: np.ndarray, total_relevant: Sequence[int], ks: Sequence[int] = (1, 5, 10)) -> dict:
    """``precision_at_K``, ``recall_at_10``, ``map_at_10`` (means over queries) with ``<name>_ci`` intervals, the
    number of queries and how many had nothing relevant in the index, and the mAP definition."""
    relevant = np.asarray(relevant, dtype=bool)
    out: dict = {
        "queries": int(relevant.shape[0]),
        "queries_without_relevant": int(np.sum(np.asarray(total_relevant) == 0)),
    }
    per_query = {f"precision_at_{k}": precision_at_k(relevant, k) for k in ks}
    per_query["recall_at_10"] = recall_at_k(relevant, total_relevant, 10)
    per_query["map_at_10"] = average_precision_at_k(relevant, total_relevant, 10)
    for name, values in per_query.items():
        finite = values[np.isfinite(values)]
        out[name] = float(finite.mean()) if finite.size else None
        out[f"{name}_ci"] = bootstrap_interval(values)
    out["map_definition"] = MAP_DEFINITION
    return out
