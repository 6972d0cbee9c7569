"""Leakage-proof splits: every group (patient, or near-duplicate cluster) lies in exactly one part,
and each part keeps the class balance of the whole (scikit-learn's StratifiedGroupKFold).

:func:`make_split` is the one way every task splits its data: near-duplicates are grouped first (perceptual
hashes, :mod:`medlearn.data.dedup`, merged with the manifest's patient groups), then whole groups go to
one part; labelled samples are stratified by label, unlabelled ones (segmentation pairs, enhancement
files) are held out group by group.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from medlearn.data.dedup import assign_groups
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.utils.atomic import atomic_path

PARTS = ("train", "val", "test")


@dataclass
class Split:
    train: list[Sample] = field(default_factory=list)
    val: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {part: len(getattr(self, part)) for part in PARTS}

    def to_csv(self, path: str | Path) -> Path:
        """``path,label,group,target,split`` rows (absolute paths), written atomically."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "group", "target", "split"])
            for part in PARTS:
                for s in getattr(self, part):
                    writer.writerow([s.path, s.label or "", s.group or "", s.target or "", part])
        return Path(path)

    @classmethod
    def from_csv(cls, path: str | Path) -> Split:
        split = cls()
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    sample = Sample(
                        path=Path(row["path"]),
                        label=row["label"] or None,
                        group=row["group"] or None,
                        target=Path(row["target"]) if row.get("target") else None,
                    )
                    getattr(split, row["split"]).append(sample)
        except (OSError, KeyError, AttributeError, csv.Error) as error:
            raise MedlearnError(f"not a medlearn split file ({error})", path) from None
        return split


def make_split(
    samples: Sequence[Sample],
    *,
    val: float,
    test: float = 0.0,
    seed: int = 0,
    group_duplicates: bool = True,
    duplicate_threshold: int | None = None,
    stratify: bool = True,
) -> Split:
    """The split every task uses: duplicates grouped (unless ``group_duplicates`` is False, which only a
    measurement of leakage should want), then whole groups per part, stratified by label when there are labels
    (and ``stratify``: a sample's label that is not a class, such as an enhancement file's modality, is not)."""
    samples = list(samples)
    if group_duplicates and len(samples) > 1:
        kwargs = {} if duplicate_threshold is None else {"threshold": duplicate_threshold}
        samples = assign_groups(samples, **kwargs)
    if stratify and any(s.label for s in samples):
        return split_samples(samples, val=val, test=test, seed=seed)
    if test > 0:
        rest = holdout_groups(samples, test, seed)
        held = holdout_groups(rest.train, val / (1 - test), seed + 1)
        return Split(held.train, held.val, rest.val)
    return holdout_groups(samples, val, seed)


def holdout_groups(samples: Sequence[Sample], fraction: float, seed: int) -> Split:
    """Hold out ``fraction`` of the groups (at least one when there are two or more) as ``val``; for data without
    labels to stratify, and small enough that a fold-based splitter would refuse (two cases)."""
    groups = sorted({s.group_key for s in samples})
    if fraction <= 0 or len(groups) < 2:
        return Split(train=list(samples))
    order = np.random.default_rng(seed).permutation(len(groups))
    held = {groups[i] for i in order[: max(1, math.ceil(fraction * len(groups)))]}
    if len(held) == len(groups):
        held.pop()
    return Split(train=[s for s in samples if s.group_key not in held], val=[s for s in samples if s.group_key in held])


def split_samples(samples: Sequence[Sample], val: float = 0.15, test: float = 0.15, seed: int = 0) -> Split:
    """Group-aware, label-stratified train/val/test split, deterministic under ``seed``."""
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise MedlearnError(f"split fractions must be in [0, 1) and sum below 1 (val={val}, test={test})")
    samples = list(samples)
    rest, test_part = _carve(samples, test, seed)
    train, val_part = _carve(rest, val / (1 - test) if test < 1 else 0, seed + 1)
    return Split(train, val_part, test_part)


def random_split(samples: Sequence[Sample], val: float = 0.15, test: float = 0.15, seed: int = 0) -> Split:
    """The naive per-image split (groups ignored): only for showing how much it leaks."""
    ungrouped = [Sample(s.path, s.label, None, s.target) for s in samples]
    split = split_samples(ungrouped, val, test, seed)
    original = {s.path: s for s in samples}
    return Split(*([original[s.path] for s in getattr(split, part)] for part in PARTS))


def kfold(samples: Sequence[Sample], k: int = 5, seed: int = 0) -> list[tuple[list[Sample], list[Sample]]]:
    """``k`` (train, test) folds; every group in exactly one test fold, labels stratified."""
    samples = list(samples)
    labels, groups = _labels_and_groups(samples)
    if len(set(groups)) < k:
        raise MedlearnError(f"{k}-fold split needs at least {k} groups; there are {len(set(groups))}")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(samples, labels, groups)
    return [([samples[i] for i in tr], [samples[i] for i in te]) for tr, te in folds]


def straddling_groups(split: Split) -> list[str]:
    """Groups with members in more than one part (must be empty for a leakage-proof split)."""
    parts_of: dict[str, set[str]] = {}
    for part in PARTS:
        for s in getattr(split, part):
            if s.group is not None:
                parts_of.setdefault(s.group, set()).add(part)
    return sorted(g for g, parts in parts_of.items() if len(parts) > 1)


def _carve(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out about ``fraction`` of the samples, whole groups at a time, stratified by label."""
    if fraction <= 0 or not samples:
        return samples, []
    labels, groups = _labels_and_groups(samples)
    n_groups = len(set(groups))
    n_splits = max(2, round(1 / fraction))
    if n_groups < n_splits:
        raise MedlearnError(f"too few groups ({n_groups}) to hold out {fraction:.0%} of the data by group")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    keep, held = next(splitter.split(samples, labels, groups))
    return [samples[i] for i in keep], [samples[i] for i in held]


def _labels_and_groups(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    names = sorted({s.label or "" for s in samples})
    labels = np.array([names.index(s.label or "") for s in samples])
    groups = np.array([s.group_key for s in samples])
    return labels, groups
