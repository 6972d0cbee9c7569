"""``data audit``: what a dataset holds and where it would leak, before anyone trains on it."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medlearn.data.dedup import DEFAULT_THRESHOLD, find_duplicate_groups
from medlearn.data.records import Sample
from medlearn.data.splits import Split, random_split, split_samples, straddling_groups

MAX_LISTED_GROUPS = 20


@dataclass
class AuditReport:
    images: int
    class_balance: dict[str, int]
    sizes: dict[str, int]
    modes: dict[str, int]
    unreadable: list[tuple[str, str]]
    duplicate_groups: int
    images_in_duplicate_groups: int
    largest_duplicate_group: int
    exact_duplicates: list[list[str]]
    example_groups: list[list[str]]
    threshold: int
    straddling_duplicates: list[list[str]] = field(default_factory=list)
    random_split_test_leaks: int = 0
    grouped_split_test_leaks: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def audit(
    samples: Sequence[Sample], *, threshold: int = DEFAULT_THRESHOLD, manifest: Path | None = None
) -> AuditReport:
    """Class balance, sizes and modes, duplicate groups, duplicates straddling a manifest's ``split``
    column, and how many test images a random 70/15/15 split would leak versus the grouped split."""
    samples = list(samples)
    report = find_duplicate_groups(samples, threshold)
    sizes, modes = _sizes_and_modes(samples)
    names = lambda group: [str(samples[i].path) for i in group]  # noqa: E731
    group_of = {i: f"dup:{n}" for n, group in enumerate(report.groups) for i in group}
    grouped = [s.with_group(group_of.get(i, s.group)) for i, s in enumerate(samples)]
    leaks_random = _test_leaks(random_split(grouped, seed=0)) if _splittable(grouped) else 0
    leaks_grouped = _test_leaks(split_samples(grouped, seed=0)) if _splittable(grouped) else 0
    return AuditReport(
        images=len(samples),
        class_balance=dict(sorted(Counter(s.label or "(none)" for s in samples).items())),
        sizes=sizes,
        modes=modes,
        unreadable=report.unreadable,
        duplicate_groups=len(report.groups),
        images_in_duplicate_groups=report.images_in_groups,
        largest_duplicate_group=max((len(g) for g in report.groups), default=0),
        exact_duplicates=[names(g) for g in report.exact_groups],
        example_groups=[names(g) for g in report.groups[:MAX_LISTED_GROUPS]],
        threshold=threshold,
        straddling_duplicates=_straddling_in_manifest(manifest, grouped) if manifest else [],
        random_split_test_leaks=leaks_random,
        grouped_split_test_leaks=leaks_grouped,
    )


def _splittable(samples: list[Sample]) -> bool:
    return len({s.group_key for s in samples}) >= 10 and len({s.label for s in samples}) >= 1


def _test_leaks(split: Split) -> int:
    """Test images with a member of their duplicate group in train."""
    train_groups = {s.group for s in split.train if s.group}
    return sum(1 for s in split.test if s.group and s.group in train_groups)


def _straddling_in_manifest(manifest: Path, grouped: list[Sample]) -> list[list[str]]:
    """Duplicate groups whose members sit in different parts of the manifest's ``split`` column."""
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "split" not in {k.strip().lower() for k in rows[0]}:
        return []
    split = Split()
    for sample, row in zip(grouped, rows, strict=False):
        part = {k.strip().lower(): v for k, v in row.items()}["split"].strip().lower()
        part = {"validation": "val", "valid": "val"}.get(part, part)
        if part in ("train", "val", "test"):
            getattr(split, part).append(sample)
    straddling = set(straddling_groups(split))
    members: dict[str, list[str]] = {}
    for part in ("train", "val", "test"):
        for s in getattr(split, part):
            if s.group in straddling:
                members.setdefault(s.group, []).append(f"{s.path} ({part})")
    return list(members.values())


def _sizes_and_modes(samples: Sequence[Sample]) -> tuple[dict[str, int], dict[str, int]]:
    """Most common image sizes and pixel modes (header reads only, no decoding for raster files)."""
    from PIL import Image

    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    for sample in samples:
        try:
            with Image.open(sample.path) as image:
                sizes[f"{image.size[0]}x{image.size[1]}"] += 1
                modes[image.mode] += 1
            continue
        except (OSError, ValueError, Image.DecompressionBombError):
            pass
        try:
            from medlearn.io import load

            image = load(sample.path)
            sizes["x".join(map(str, image.spatial_shape))] += 1
            modes[f"{image.format} {image.array.dtype} C={image.channels}"] += 1
        except Exception:  # noqa: BLE001 - unreadable files are listed by the duplicate scan
            modes["unreadable"] += 1
    return dict(sizes.most_common(10)), dict(modes.most_common())
