"""Near-duplicate grouping by perceptual hashing, so that copies never straddle train and test.

Br35H holds an exact duplicate pair and very many near-duplicates (the same slice resized,
re-contrasted or re-encoded). Measured on its 3000 images with a 64-bit pHash of the grey image:
pairs at Hamming distance <= 6 are all same-class (625 groups covering 2718 images), while from
distance 8 on, pairs of different classes appear (62 at 8, 361 at 10) — different images that merely
look alike. Hence ``DEFAULT_THRESHOLD = 6``. Exact pixel copies are always grouped (pixel digest).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from medlearn.data.files import file_fingerprint
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.utils.atomic import write_text_atomic

DEFAULT_THRESHOLD = 6
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass
class DuplicateReport:
    """Groups (lists of sample indices, each with more than one member) and the files that could not be hashed."""

    groups: list[list[int]]
    exact_groups: list[list[int]]
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_in_groups(self) -> int:
        return sum(len(g) for g in self.groups)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "medlearn" / "hashes"


def find_duplicate_groups(
    samples: Sequence[Sample], threshold: int = DEFAULT_THRESHOLD, cache_dir: Path | None = None
) -> DuplicateReport:
    """Connected components of images whose pHashes differ by at most ``threshold`` bits (or whose pixels are equal)."""
    hashes, digests, unreadable = _hash_all(samples, cache_dir or default_cache_dir())
    readable = [i for i in range(len(samples)) if hashes[i] is not None]
    n = len(readable)
    if n == 0:
        return DuplicateReport([], [], unreadable)
    packed = np.array([hashes[i] for i in readable], dtype=np.uint64)
    rows, cols = _close_pairs(packed, threshold)
    exact = _exact_pairs([digests[i] for i in readable])
    rows = np.concatenate([rows, exact[0]])
    cols = np.concatenate([cols, exact[1]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    groups = _groups_of(labels, readable)
    exact_graph = coo_matrix((np.ones(len(exact[0]), dtype=np.int8), exact), shape=(n, n))
    exact_groups = _groups_of(connected_components(exact_graph, directed=False)[1], readable)
    return DuplicateReport(groups, exact_groups, unreadable)


def assign_groups(
    samples: Sequence[Sample], threshold: int = DEFAULT_THRESHOLD, cache_dir: Path | None = None
) -> list[Sample]:
    """Samples with ``group`` set so near-duplicates share one; manifest groups (patients) are kept and merged.

    A duplicate pair spanning two patients unites them: both patients' images then share a group.
    """
    report = find_duplicate_groups(samples, threshold, cache_dir)
    n = len(samples)
    rows, cols = [], []
    for group in report.groups:
        rows += group[:-1]
        cols += group[1:]
    by_manifest_group: dict[str, int] = {}
    for i, sample in enumerate(samples):
        if sample.group is not None:
            first = by_manifest_group.setdefault(sample.group, i)
            rows.append(first)
            cols.append(i)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    grouped = []
    for i, sample in enumerate(samples):
        if sizes[labels[i]] == 1:
            grouped.append(sample)
        elif sample.group is not None and all(
            samples[j].group == sample.group for j in np.flatnonzero(labels == labels[i])
        ):
            grouped.append(sample)  # a patient group no duplicate links to another: keep its name
        else:
            grouped.append(sample.with_group(f"dup:{labels[i]}"))
    return grouped


def _groups_of(labels: np.ndarray, readable: list[int]) -> list[list[int]]:
    sizes = np.bincount(labels)
    groups: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        if sizes[label] > 1:
            groups.setdefault(int(label), []).append(readable[position])
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def _close_pairs(packed: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) within ``threshold`` bits, vectorised in blocks (3000 images: well under a second)."""
    as_bytes = packed.view(np.uint8).reshape(len(packed), 8)
    rows, cols = [], []
    block = 512
    for start in range(0, len(packed), block):
        xor = as_bytes[start : start + block, None, :] ^ as_bytes[None, :, :]
        distance = _POPCOUNT[xor].sum(axis=2, dtype=np.uint16)
        i, j = np.nonzero(distance <= threshold)
        i = i + start
        keep = i < j
        rows.append(i[keep])
        cols.append(j[keep])
    return np.concatenate(rows), np.concatenate(cols)


def _exact_pairs(digests: list[str]) -> tuple[np.ndarray, np.ndarray]:
    first: dict[str, int] = {}
    rows, cols = [], []
    for i, digest in enumerate(digests):
        if digest in first:
            rows.append(first[digest])
            cols.append(i)
        else:
            first[digest] = i
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


def _hash_all(samples: Sequence[Sample], cache_dir: Path):
    """pHash (as uint64) and pixel digest per sample, reusing a cache keyed by path, size and mtime."""
    cache_file = Path(cache_dir) / "phash-v1.json"
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    hashes: list[int | None] = []
    digests: list[str | None] = []
    unreadable: list[tuple[str, str]] = []
    changed = False
    for sample in samples:
        key = file_fingerprint(sample.path)
        if key in cache:
            value, digest = cache[key]
        else:
            try:
                value, digest = _hash_image(sample.path)
            except MedlearnError as error:
                unreadable.append((str(sample.path), error.problem))
                hashes.append(None)
                digests.append(None)
                continue
            cache[key] = [value, digest]
            changed = True
        hashes.append(int(value))
        digests.append(digest)
    if changed:
        with contextlib.suppress(OSError):  # a read-only home must not stop the run; hashing is just slower
            write_text_atomic(cache_file, json.dumps(cache))
    return hashes, digests, unreadable


def _hash_image(path: Path) -> tuple[int, str]:
    import imagehash

    grey = _grey_pil(path)
    bits = imagehash.phash(grey).hash.flatten()
    value = int(np.packbits(bits).view(">u8")[0])
    digest = hashlib.blake2b(np.asarray(grey).tobytes(), digest_size=16).hexdigest()
    return value, f"{digest}-{grey.size[0]}x{grey.size[1]}"


def _grey_pil(path: Path):
    """Grey PIL image: Pillow directly for raster files (fast), medlearn.io for medical formats."""
    from PIL import Image, UnidentifiedImageError

    if Path(path).name.lower().endswith(RASTER_SUFFIXES):
        try:
            with Image.open(path) as image:
                return image.convert("L")
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
            raise MedlearnError(f"cannot read the image ({error})", path) from None
    from medlearn.io import load, to_grey
    from medlearn.io.intensity import display_scale

    image = to_grey(load(path))
    array = image.array[0]
    if array.ndim == 3:
        array = array[..., array.shape[-1] // 2]
    return Image.fromarray((np.asarray(display_scale(array)) * 255).astype(np.uint8))
