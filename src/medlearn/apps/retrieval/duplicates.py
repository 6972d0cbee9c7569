"""Near-duplicates by embedding: pairs of indexed images whose vectors are almost parallel, beyond the copies
perceptual hashing already grouped (re-exported, re-windowed, cropped or re-scaled copies that keep the content but
change the pixels enough to flip hash bits). ``medlearn data audit --index`` lists them.

How similar is "almost parallel" depends on the embedder: a classifier trunk puts most images of one class above
0.95, a histogram embedding spreads them wider. Without a user threshold, :func:`calibrated_min_similarity` learns it
from the copies the perceptual hash already confirmed in the same index: the lowest similarity at which 90% of the
neighbour pairs are such copies (the other 10%, as similar as confirmed copies, are the copies the hash missed)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medlearn.apps.retrieval.index import VectorIndex

#: Cosine similarity from which two embeddings count as the same content, when nothing calibrates it.
DEFAULT_MIN_SIMILARITY = 0.98
#: Hash-confirmed duplicate pairs needed to calibrate the threshold.
MIN_CALIBRATION_PAIRS = 5
#: Share of the neighbour pairs above the calibrated threshold that are hash-confirmed copies.
CONFIRMED_SHARE = 0.9


@dataclass(frozen=True)
class DuplicatePair:
    first: str
    second: str
    similarity: float
    #: The two were already in one group (given, or perceptual-hash near-duplicates).
    same_group: bool


def embedding_duplicates(
    index: VectorIndex, min_similarity: float = DEFAULT_MIN_SIMILARITY, neighbours: int = 5
) -> list[DuplicatePair]:
    """Each unordered pair once, most similar first."""
    if len(index) < 2:
        return []
    k = min(neighbours + 1, len(index))
    scores, positions = index.search(index.vectors, k)
    pairs: dict[tuple[int, int], float] = {}
    for row in range(len(index)):
        for score, column in zip(scores[row], positions[row], strict=True):
            column = int(column)
            if column != row and score >= min_similarity:
                key = (min(row, column), max(row, column))
                pairs[key] = max(pairs.get(key, -1.0), float(score))
    entries = index.entries
    found = [
        DuplicatePair(entries[a].path, entries[b].path, round(s, 5), entries[a].group_key == entries[b].group_key)
        for (a, b), s in pairs.items()
    ]
    return sorted(found, key=lambda pair: (-pair.similarity, pair.first, pair.second))


def calibrated_min_similarity(
    index: VectorIndex, neighbours: int = 5, confirmed_share: float = CONFIRMED_SHARE
) -> tuple[float, str]:
    """``(threshold, reason)``: the lowest similarity at which ``confirmed_share`` of the near-neighbour pairs at or
    above it are copies the perceptual hash already grouped (``dup:`` groups; given patient groups are no evidence
    of copies), so that what else it flags is as similar as confirmed copies. The default when fewer than
    :data:`MIN_CALIBRATION_PAIRS` confirmed pairs exist."""
    if len(index) < 2:
        return DEFAULT_MIN_SIMILARITY, "default (fewer than two images)"
    scores, positions = index.search(index.vectors, min(neighbours + 1, len(index)))
    groups = [entry.group or "" for entry in index.entries]
    pairs: dict[tuple[int, int], tuple[float, bool]] = {}
    for row in range(len(index)):
        for score, column in zip(scores[row], positions[row], strict=True):
            column = int(column)
            if column != row:
                copy = groups[row].startswith("dup:") and groups[row] == groups[column]
                pairs[(min(row, column), max(row, column))] = (float(score), copy)
    similarity = np.array([value[0] for value in pairs.values()])
    confirmed = np.array([value[1] for value in pairs.values()], dtype=bool)
    if confirmed.sum() < MIN_CALIBRATION_PAIRS:
        return DEFAULT_MIN_SIMILARITY, (
            f"default: only {int(confirmed.sum())} perceptual-hash duplicate pairs to calibrate on "
            f"(at least {MIN_CALIBRATION_PAIRS} needed)"
        )
    order = np.argsort(-similarity, kind="stable")
    share = np.cumsum(confirmed[order]) / np.arange(1, len(order) + 1)
    reached = np.flatnonzero(share >= confirmed_share)
    if not reached.size:
        return DEFAULT_MIN_SIMILARITY, "default: no similarity level where hash-confirmed copies dominate"
    threshold = math.floor(float(similarity[order][reached[-1]]) * 1e5) / 1e5  # rounded down: the pair stays in
    return threshold, (
        f"calibrated: {confirmed_share:.0%} of the neighbour pairs this similar are copies the perceptual hash "
        f"confirms ({int(confirmed.sum())} such pairs)"
    )


def beyond_hashes(pairs: list[DuplicatePair]) -> list[DuplicatePair]:
    return [pair for pair in pairs if not pair.same_group]


def similarity_summary(index: VectorIndex) -> dict:
    """Distribution of each image's nearest-neighbour similarity (to choose a threshold)."""
    if len(index) < 2:
        return {}
    scores, positions = index.search(index.vectors, 2)
    nearest = np.where(positions[:, 0] == np.arange(len(index)), scores[:, 1], scores[:, 0])
    return {f"p{q}": float(np.percentile(nearest, q)) for q in (50, 90, 99)}
