"""Nested, group-aware, per-class labelled subsets: how a label-scarcity study picks its labelled images.

Kept apart from any one study so that every study of "what if only x% of the images were labelled"
draws its subsets the same way: per class, as whole duplicate (or patient) groups, in a seeded random
order, so that one seed's subsets are nested (5% ⊂ 10% ⊂ 25% ⊂ 100%) and no group is ever split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def nested_label_subsets(
    groups: Sequence[str], labels: Sequence[int], fractions: Sequence[float], seed: int
) -> dict[float, np.ndarray]:
    """Sorted indices of the labelled subset at each fraction: whole groups, stratified by class, nested.

    Each group is assigned to its majority class; per class the groups are put in a random order
    (from ``seed``) and the subset takes the shortest prefix whose image count is closest to
    ``fraction`` x the class's images (at least one group). Prefixes of one order are nested, so a
    seed's subsets grow with the fraction; fraction 1 takes everything.
    """
    labels = np.asarray(labels, dtype=np.int64)
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    by_class: dict[int, list[str]] = {}
    for group in sorted(members):
        majority = int(np.bincount(labels[members[group]]).argmax())
        by_class.setdefault(majority, []).append(group)
    rng = np.random.default_rng([int(seed), 20180301])
    chosen: dict[float, list[int]] = {float(f): [] for f in fractions}
    for label in sorted(by_class):
        order = [by_class[label][i] for i in rng.permutation(len(by_class[label]))]
        counts = np.cumsum([len(members[g]) for g in order])
        for fraction in chosen:
            take = int(np.argmin(np.abs(counts - fraction * counts[-1]))) + 1
            for group in order[:take]:
                chosen[fraction].extend(members[group])
    return {fraction: np.array(sorted(indices), dtype=np.int64) for fraction, indices in chosen.items()}
