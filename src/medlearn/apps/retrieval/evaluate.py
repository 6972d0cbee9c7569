"""``retrieve evaluate``: rank the index for every image of a test CSV and score the rankings (precision@1/5/10,
recall@10, mAP@10 as :mod:`medlearn.evaluation.retrieval` defines them), beside the classical embedders built on
the same index images.

Relevance is the same label (``label``, the default: category retrieval) or the same group (``group``: instance
retrieval, the same patient or near-duplicate cluster). The test images and the index images are grouped together
first (given groups merged with perceptual-hash near-duplicate clusters).

Leakage: with label relevance every index entry in a query's group is left out of that query's ranking and of its
relevant count, so a near-copy of the query never counts as a hit. With group relevance the group is what must be
found, so only the query's own file (same path or same content digest) is left out, and queries whose group has
no other member in the index are left out of the means (counted in ``queries_without_relevant``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.retrieval.embedders import embedder_from_description, make_embedder
from medlearn.apps.retrieval.index import VectorIndex
from medlearn.data.dedup import assign_groups
from medlearn.data.records import Sample
from medlearn.data.sources import load_samples
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines import compare_to_baseline
from medlearn.evaluation.retrieval import retrieval_metrics
from medlearn.utils.hashing import file_sha256

K = 10
#: Classical embedders scored beside the index's own.
BASELINES = ("histogram", "phash")
#: What makes an indexed image relevant to a query, and how the JSON and report say it.
RELEVANCE = {"label": "same label", "group": "same group (instance retrieval)"}


def joint_groups(index: VectorIndex, queries: Sequence[Sample]) -> tuple[list[str], list[str]]:
    """Group keys of the index entries and of the queries after grouping them together (near-duplicates of a
    query inside the index share its key)."""
    samples = [Sample(Path(e.path), e.label, e.group) for e in index.entries] + list(queries)
    grouped = assign_groups(samples)
    keys = [s.group_key for s in grouped]
    return keys[: len(index)], keys[len(index) :]


def relevance_and_exclusions(
    index: VectorIndex, queries: Sequence[Sample], relevance: str = "label"
) -> tuple[np.ndarray, list[set[int]]]:
    """``(matches (queries, index) booleans, positions each query must not get back)`` (module docstring)."""
    if relevance not in RELEVANCE:
        raise MedlearnError(f"relevance must be one of {', '.join(RELEVANCE)}, got {relevance!r}")
    index_groups, query_groups = joint_groups(index, queries)
    if relevance == "label":
        if any(q.label is None for q in queries):
            raise MedlearnError("every test image needs a label for label relevance (or use group relevance)")
        by_group: dict[str, set[int]] = {}
        for position, key in enumerate(index_groups):
            by_group.setdefault(key, set()).add(position)
        exclude = [by_group.get(key, set()) for key in query_groups]
        labels = np.array([e.label for e in index.entries], dtype=object)
        matches = np.array([labels == q.label for q in queries], dtype=bool)
    else:
        by_copy: dict[str, set[int]] = {}
        for position, entry in enumerate(index.entries):
            for key in (entry.path, entry.fingerprint):
                if key:
                    by_copy.setdefault(key, set()).add(position)
        exclude = []
        for query in queries:
            path = str(Path(query.path).resolve())
            exclude.append(by_copy.get(path, set()) | by_copy.get(file_sha256(Path(query.path)), set()))
        groups = np.array(index_groups, dtype=object)
        matches = np.array([groups == key for key in query_groups], dtype=bool)
    for row, skip in enumerate(exclude):
        matches[row, list(skip)] = False
    return matches, exclude


@dataclass
class Ranking:
    """The top-``k`` answers of every query and which of them are relevant (for the metrics and the report)."""

    similarities: np.ndarray
    positions: np.ndarray
    relevant: np.ndarray
    total_relevant: np.ndarray
    seconds: float

    @property
    def scored(self) -> np.ndarray:
        """Queries that count: all for label relevance; those with something to find for group relevance."""
        return self.total_relevant > 0

    def precision_curve(self, relevance: str) -> list[float]:
        """Mean precision@r for r = 1..k over the queries that count."""
        rows = self.relevant[self.scored] if relevance == "group" else self.relevant
        return [float(rows[:, :r].mean()) for r in range(1, rows.shape[1] + 1)]


def rank(
    index: VectorIndex, query_vectors: np.ndarray, matches: np.ndarray, exclude: list[set[int]], k: int = K
) -> Ranking:
    """Search ``index`` with ``query_vectors`` leaving ``exclude`` out; ``matches`` says what is relevant."""
    started = time.perf_counter()
    similarities, positions = index.search(query_vectors, k, exclude=exclude)
    seconds = time.perf_counter() - started
    return Ranking(
        similarities, positions, np.take_along_axis(matches, positions, axis=1), matches.sum(axis=1), seconds
    )


def score(ranking: Ranking, relevance: str) -> dict:
    """The metrics of ``ranking`` (group relevance: over the queries with something to find)."""
    keep = ranking.scored if relevance == "group" else np.ones(len(ranking.relevant), dtype=bool)
    if not keep.any():
        raise MedlearnError("no query has another member of its group in the index: nothing to find")
    summary = retrieval_metrics(ranking.relevant[keep], ranking.total_relevant[keep])
    summary["queries_without_relevant"] = int((ranking.total_relevant == 0).sum())
    summary["query_ms"] = round(1000 * ranking.seconds / max(1, len(ranking.relevant)), 3)
    return summary


@dataclass
class Evaluation:
    """What ``retrieve evaluate`` found: the JSON summary, and the rankings the report shows."""

    summary: dict
    queries: list[Sample]
    entries: list
    ranking: Ranking
    curves: dict[str, list[float]] = field(default_factory=dict)


def evaluate_index(
    folder: Path, data: str, *, relevance: str = "label", baselines: Sequence[str] = BASELINES
) -> Evaluation:
    """The index's own embedder and the classical ones on the test images of ``data``."""
    if relevance not in RELEVANCE:
        raise MedlearnError(f"relevance must be one of {', '.join(RELEVANCE)}, got {relevance!r}")
    index = VectorIndex.load(folder)
    queries = load_samples(data, labelled=False)
    if not queries:
        raise MedlearnError("no test images", data)
    matches, exclude = relevance_and_exclusions(index, queries, relevance)
    embedder = embedder_from_description(index.embedder)
    started = time.perf_counter()
    vectors = embedder.embed([Path(q.path) for q in queries])
    embed_seconds = time.perf_counter() - started
    own = rank(index, vectors, matches, exclude)
    name = index.embedder["name"]
    summary = score(own, relevance)
    summary.update(
        {
            "embedder": name,
            "index_size": len(index),
            "relevance": RELEVANCE[relevance],
            "excluded_per_query": float(np.mean([len(e) for e in exclude])),
            "embed_ms_per_image": round(1000 * embed_seconds / len(queries), 2),
            "baseline": {},
        }
    )
    curves = {name: own.precision_curve(relevance)}
    paths = [Path(e.path) for e in index.entries]
    for baseline in baselines:
        if baseline == name:
            continue
        classical = make_embedder(baseline)
        vectors_index = classical.fit(paths) if hasattr(classical, "fit") else classical.embed(paths)
        other = VectorIndex(vectors_index, index.entries, classical.description)
        ranking = rank(other, classical.embed([Path(q.path) for q in queries]), matches, exclude)
        scores = score(ranking, relevance)
        summary["baseline"][baseline] = {key: scores[key] for key in scores if not key.endswith("_ci")}
        curves[baseline] = ranking.precision_curve(relevance)
    comparison = compare_to_baseline(summary, summary["baseline"], "map_at_10")
    if comparison is not None:
        summary["baseline_comparison"] = comparison.to_dict("mAP@10")
    return Evaluation(summary, queries, list(index.entries), own, curves)
