"""``retrieve evaluate``: rank the index for every image of a test CSV and score the rankings (precision@1/5/10,
recall@10, mAP@10 as :mod:`medlearn.evaluation.retrieval` defines them), beside the classical embedders built on
the same index images.

Leakage: the test images and the index images are grouped together by perceptual hash first; every index entry in
a query's duplicate group (or its given group) is left out of that query's ranking and of its relevant count, so a
near-copy of the query never counts as a hit. Relevance is the same label.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn.apps.retrieval.embedders import embedder_from_description, make_embedder
from medlearn.apps.retrieval.index import VectorIndex
from medlearn.data.dedup import assign_groups
from medlearn.data.records import Sample
from medlearn.data.sources import load_samples
from medlearn.errors import MedlearnError
from medlearn.evaluation.retrieval import retrieval_metrics

K = 10
#: Classical embedders scored beside the index's own.
BASELINES = ("histogram", "phash")


def joint_groups(index: VectorIndex, queries: Sequence[Sample]) -> tuple[list[str], list[str]]:
    """Group keys of the index entries and of the queries after grouping them together (near-duplicates of a
    query inside the index share its key)."""
    samples = [Sample(Path(e.path), e.label, e.group) for e in index.entries] + list(queries)
    grouped = assign_groups(samples)
    keys = [s.group_key for s in grouped]
    return keys[: len(index)], keys[len(index) :]


def rank_and_score(index: VectorIndex, query_vectors: np.ndarray, queries: Sequence[Sample], k: int = K) -> dict:
    """Metrics of ``index`` searched with ``query_vectors`` (one per query sample), leakage excluded."""
    index_groups, query_groups = joint_groups(index, queries)
    by_group: dict[str, set[int]] = {}
    for position, key in enumerate(index_groups):
        by_group.setdefault(key, set()).add(position)
    exclude = [by_group.get(key, set()) for key in query_groups]
    started = time.perf_counter()
    _, positions = index.search(query_vectors, k, exclude=exclude)
    seconds = time.perf_counter() - started
    labels = np.array([e.label for e in index.entries], dtype=object)
    targets = [q.label for q in queries]
    if any(t is None for t in targets):
        raise MedlearnError("every test image needs a label: relevance is the same label")
    matches = np.array([labels == t for t in targets])
    for row, skip in enumerate(exclude):
        matches[row, list(skip)] = False
    relevant = np.take_along_axis(matches, positions, axis=1)
    summary = retrieval_metrics(relevant, matches.sum(axis=1))
    summary["query_ms"] = round(1000 * seconds / max(1, len(queries)), 3)
    summary["excluded_per_query"] = float(np.mean([len(e) for e in exclude]))
    return summary


def evaluate_index(folder: Path, data: str, *, baselines: Sequence[str] = BASELINES) -> dict:
    """The index's own embedder and the classical ones on the test images of ``data``."""
    index = VectorIndex.load(folder)
    queries = load_samples(data)
    if not queries:
        raise MedlearnError("no test images", data)
    embedder = embedder_from_description(index.embedder)
    started = time.perf_counter()
    vectors = embedder.embed([Path(q.path) for q in queries])
    embed_seconds = time.perf_counter() - started
    summary = rank_and_score(index, vectors, queries)
    summary.update(
        {
            "embedder": index.embedder["name"],
            "index_size": len(index),
            "relevance": "same label",
            "embed_ms_per_image": round(1000 * embed_seconds / len(queries), 2),
            "baseline": {},
        }
    )
    paths = [Path(e.path) for e in index.entries]
    for name in baselines:
        if name == index.embedder["name"]:
            continue
        classical = make_embedder(name)
        vectors_index = classical.fit(paths) if hasattr(classical, "fit") else classical.embed(paths)
        other = VectorIndex(vectors_index, index.entries, classical.description)
        scores = rank_and_score(other, classical.embed([Path(q.path) for q in queries]), queries)
        summary["baseline"][name] = {key: scores[key] for key in scores if not key.endswith("_ci")}
    return summary
