"""``data audit``: what a dataset holds and where it would leak, before anyone trains on it."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from medlearn.data.dedup import DEFAULT_THRESHOLD, assign_groups, find_duplicate_groups
from medlearn.data.records import Sample
from medlearn.data.splits import Split, random_split, split_samples, straddling_groups
from medlearn.io import load

MAX_LISTED_GROUPS = 20
_PIL_BITS = {"1": 1, "I;16": 16, "I": 32, "F": 32}  # bits per sample of Pillow modes; every other mode has 8


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
    smallest_size: str = ""
    largest_size: str = ""
    channels: dict[str, int] = field(default_factory=dict)
    bit_depths: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def audit(
    samples: Sequence[Sample],
    *,
    threshold: int = DEFAULT_THRESHOLD,
    manifest: Path | None = None,
    cache_dir: Path | None = None,
) -> AuditReport:
    """Class balance, sizes and modes, duplicate groups, duplicates straddling a manifest's ``split``
    column, and how many test images a random 70/15/15 split would leak versus the grouped split.

    A leak is a test image whose group (near-duplicates, merged with manifest patients) has a member
    in train.
    """
    samples = list(samples)
    report = find_duplicate_groups(samples, threshold, cache_dir)
    facts = _image_facts(samples)
    names = lambda group: [str(samples[i].path) for i in group]  # noqa: E731
    grouped = assign_groups(samples, report=report)
    leaks_random = _test_leaks(random_split(grouped, seed=0)) if _splittable(grouped) else 0
    leaks_grouped = _test_leaks(split_samples(grouped, seed=0)) if _splittable(grouped) else 0
    return AuditReport(
        images=len(samples),
        class_balance=dict(sorted(Counter(s.label or "(none)" for s in samples).items())),
        sizes=dict(facts["sizes"].most_common(10)),
        modes=dict(facts["modes"].most_common()),
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
        smallest_size=_size_text(min(facts["shapes"], key=_pixels, default=())),
        largest_size=_size_text(max(facts["shapes"], key=_pixels, default=())),
        channels=dict(sorted(facts["channels"].items())),
        bit_depths=dict(sorted(facts["bits"].items())),
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


def _image_facts(samples: Sequence[Sample]) -> dict[str, Counter]:
    """Counts of sizes, modes, channels and bit depths (raster files: header reads only, no decoding)."""
    facts: dict[str, Counter] = {key: Counter() for key in ("sizes", "shapes", "modes", "channels", "bits")}
    for sample in samples:
        header = _header(sample.path)
        if header is None:
            facts["modes"]["unreadable"] += 1  # the duplicate scan lists the reason
            continue
        shape, mode, channels, bits = header
        facts["sizes"][_size_text(shape)] += 1
        facts["shapes"][shape] += 1
        facts["modes"][mode] += 1
        facts["channels"][str(channels)] += 1
        facts["bits"][f"{bits}-bit"] += 1
    return facts


def _header(path: Path) -> tuple[tuple[int, ...], str, int, int] | None:
    """``(size, mode, channels, bits per sample)``: Pillow for raster files, medlearn.io otherwise."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return tuple(image.size), image.mode, len(image.getbands()), _PIL_BITS.get(image.mode[:4], 8)
    except (OSError, ValueError, Image.DecompressionBombError):
        pass
    try:
        image = load(path)
    except Exception:  # noqa: BLE001 - unreadable files are listed (with the reason) by the duplicate scan
        return None
    dtype = image.array.dtype
    return image.spatial_shape, f"{image.format} {dtype}", image.channels, dtype.itemsize * 8


def _size_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _pixels(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 0
