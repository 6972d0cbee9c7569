"""2D training data for image restoration: unit-range slices of images and volumes, and random
(degraded, clean) patch pairs made on the fly.

- Files come from a CSV with a ``path`` (or ``image``) column, optional ``group``/``patient_id`` and
  ``modality`` columns; relative paths are resolved against the CSV's folder. A ``label`` column is
  allowed and ignored: any classification manifest works.
- Each image is converted to grey (RGB: BT.601 luminance; other channel counts: their mean), then mapped
  to [0, 1] as a whole (:func:`~medlearn.io.intensity.unit_range`: CT by HU window, others by the
  0.5-99.5 percentiles of the whole image or volume).
- A 2D image is one slice; a volume gives its slices along the thickest-spacing axis (the last one on
  ties), skipping nearly empty ones (fewer than ``min_content`` of the pixels above 5% of the range).
- :class:`EnhancementPatchDataset` crops a random ``patch_size`` square from a random slice, flips /
  rotates it by multiples of 90 degrees, and degrades it (:class:`~medlearn.data.degradation.RandomDegradation`):
  each patch is a pure function of ``(seed, index)`` as in :mod:`medlearn.data.patches`, so the
  trainer's per-epoch reseeding of the sampler makes an epoch, and a resumed run, reproducible.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from medlearn.data.degradation import DegradationSpec, RandomDegradation, crop_to_multiple, degrade
from medlearn.data.records import Sample
from medlearn.data.sources import GROUP_COLUMNS, br35h_samples
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.color import to_grey
from medlearn.io.geometry import thickest_axis
from medlearn.io.intensity import unit_range

VIRTUAL_LENGTH = 2**31 - 1
#: A pixel counts as content above this unit intensity (for skipping empty slices of volumes).
CONTENT_THRESHOLD = 0.05


@dataclass
class EnhancementSlice:
    """One grey 2D slice in unit range, with where it came from."""

    image: np.ndarray
    source: Path
    index: int | None = None  # slice index along ``axis`` of a volume; None for a 2D image
    axis: int | None = None

    @property
    def name(self) -> str:
        return self.source.name if self.index is None else f"{self.source.name}#{self.index}"

    def seed_key(self, seed: int) -> list[int]:
        """Seed material of this slice's fixed degradation: the run/evaluation seed, file name and slice."""
        return [
            int(seed) & 0xFFFFFFFFFFFFFFFF,
            zlib.crc32(self.source.name.encode()),
            0 if self.index is None else int(self.index) + 1,
        ]


def enhancement_samples(source: str | Path) -> list[Sample]:
    """Rows of a CSV with a ``path`` (or ``image``) column; ``group`` / ``patient_id`` keep files together."""

    if str(source).lower() == "br35h":
        return br35h_samples()
    csv_path = Path(source)
    if csv_path.suffix.lower() != ".csv":
        raise MedlearnError("expected a CSV file with a 'path' column (one image or volume per row)", csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
            columns = [(c or "").strip().lower() for c in reader.fieldnames or []]
    except FileNotFoundError:
        raise MedlearnError("no such CSV file", csv_path) from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise MedlearnError(f"not a readable CSV file ({error})", csv_path) from None
    column = "path" if "path" in columns else "image" if "image" in columns else None
    if column is None:
        raise MedlearnError(f"the CSV needs a 'path' (or 'image') column; it has {columns}", csv_path)
    if not rows:
        raise MedlearnError("the CSV has no rows", csv_path)
    group_column = next((c for c in GROUP_COLUMNS if c in columns), None)
    samples = []
    for number, row in enumerate(rows, start=2):
        if not row.get(column):
            raise MedlearnError(f"row {number} has an empty '{column}'", csv_path)
        path = Path(row[column]).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        if not path.exists():
            raise MedlearnError(f"row {number}: no such file or folder: {path}", csv_path)
        group = (row.get(group_column) or None) if group_column else None
        samples.append(Sample(path=path, label=row.get("modality") or None, group=group))
    return samples


def grey_array(image) -> np.ndarray:
    """The image's pixels as one float32 channel ``(*spatial)``: RGB by luminance, other counts by mean."""

    if image.channels == 3:
        return to_grey(image).array[0].astype(np.float32)
    return np.asarray(image.array, dtype=np.float32).mean(axis=0)


def image_slices(
    image,
    *,
    modality: str | None = None,
    ct_window: str | None = None,
    min_content: float = 0.1,
    bounds: tuple[float, float] | None = None,
) -> list[EnhancementSlice]:
    """Unit-range grey slices of a loaded :class:`~medlearn.io.MedicalImage` (2D: itself); ``bounds``: the fixed
    intensity range of a dataset that shares one scale (else each image's own percentiles)."""

    source = Path(image.source or "image")
    unit = unit_range(grey_array(image), modality or image.modality, window=ct_window, bounds=bounds)
    if unit.ndim == 2:
        return [EnhancementSlice(unit, source)]
    if unit.ndim != 3:
        raise MedlearnError(f"expected a 2D image or a 3D volume, got spatial shape {unit.shape}", source)
    axis = thickest_axis(image.spacing)
    slices = []
    for index in range(unit.shape[axis]):
        plane = np.ascontiguousarray(np.take(unit, index, axis=axis))
        if float((plane > CONTENT_THRESHOLD).mean()) >= min_content:
            slices.append(EnhancementSlice(plane, source, index, axis))
    return slices


def load_slices(
    samples: Sequence[Sample],
    *,
    modality: str | None = None,
    ct_window: str | None = None,
    min_content: float = 0.1,
    min_size: int = 0,
    bounds: tuple[float, float] | None = None,
) -> list[EnhancementSlice]:
    """Slices of every sample (in order); a file that cannot be used is a :class:`MedlearnError` naming it.

    ``modality`` applies to every file (else the CSV's ``modality`` column, kept in ``Sample.label``, else
    what the file records). ``min_size``: slices smaller than this in height or width are refused. ``bounds``:
    see :func:`image_slices`.
    """

    slices: list[EnhancementSlice] = []
    for sample in samples:
        chosen = modality or sample.label
        image = load(sample.path, modality=chosen)  # unreadable / non-finite: ImageReadError naming the file
        found = image_slices(image, modality=chosen, ct_window=ct_window, min_content=min_content, bounds=bounds)
        if not found:
            raise MedlearnError(
                f"no slice has content (at least {min_content:.0%} of pixels above {CONTENT_THRESHOLD:g} "
                "of the intensity range)",
                sample.path,
            )
        for item in found:
            item.source = Path(sample.path)
            height, width = item.image.shape
            if min(height, width) < min_size:
                raise MedlearnError(
                    f"image of {height}x{width} pixels is smaller than the {min_size}x{min_size} training crop",
                    sample.path,
                )
        slices.extend(found)
    return slices


def fixed_pair(item: EnhancementSlice, spec: DegradationSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(degraded, clean)`` of a whole slice under a fixed seed (clean cropped to a multiple of the scale)."""
    clean = crop_to_multiple(item.image, spec.scale) if spec.scale > 1 else item.image
    seed_value = int(np.random.SeedSequence(item.seed_key(seed)).generate_state(1, np.uint64)[0] >> 1)
    return degrade(clean, spec, seed_value), clean


def centre_crop(image: np.ndarray, size: int, multiple: int = 1) -> np.ndarray:
    """The central ``size`` x ``size`` part (or less along smaller axes), sizes a multiple of ``multiple``."""
    out = image
    for axis in (0, 1):
        n = out.shape[axis]
        keep = min(n, size)
        keep -= keep % multiple
        start = (n - keep) // 2
        out = np.take(out, range(start, start + keep), axis=axis)
    return np.ascontiguousarray(out)


class EnhancementPatchDataset(Dataset):
    """Random ``(degraded, clean)`` patch pairs; index ``i`` always gives the same pair for one ``seed``."""

    def __init__(
        self,
        slices: Sequence[EnhancementSlice],
        spec: DegradationSpec,
        *,
        patch_size: int = 64,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        if not slices:
            raise MedlearnError("no training slices")
        if patch_size % spec.scale:
            raise MedlearnError(f"patch_size {patch_size} must be a multiple of the scale {spec.scale}")
        small = next((s for s in slices if min(s.image.shape) < patch_size), None)
        if small is not None:
            raise MedlearnError(
                f"slice of {small.image.shape[0]}x{small.image.shape[1]} pixels is smaller than the "
                f"{patch_size}x{patch_size} training crop",
                small.source,
            )
        self.slices = list(slices)
        self.spec = spec
        self.degradation = RandomDegradation(spec)
        self.patch_size = patch_size
        self.augment = augment
        self.seed = seed
        # slices are drawn in proportion to their area, so a big image is not under-sampled next to small ones
        areas = np.array([s.image.size for s in self.slices], dtype=np.float64)
        self.weights = areas / areas.sum()

    def __len__(self) -> int:
        return VIRTUAL_LENGTH

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        image = self.slices[int(rng.choice(len(self.slices), p=self.weights))].image
        size = self.patch_size
        top = int(rng.integers(image.shape[0] - size + 1))
        left = int(rng.integers(image.shape[1] - size + 1))
        clean = image[top : top + size, left : left + size]
        if self.augment:
            clean = np.rot90(clean, int(rng.integers(4)))
            if rng.random() < 0.5:
                clean = clean[:, ::-1]
        clean = np.ascontiguousarray(clean, dtype=np.float32)
        degraded = self.degradation(clean, rng)
        return torch.from_numpy(np.ascontiguousarray(degraded)[None]), torch.from_numpy(clean[None])


def validation_pairs(
    slices: Sequence[EnhancementSlice], spec: DegradationSpec, *, count: int, max_size: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Up to ``count`` whole slices (evenly spread over ``slices``; centre-cropped to ``max_size``) as
    ``(degraded (1, 1, h, w), clean (1, 1, H, W))`` batches degraded under a fixed seed."""
    if not slices or count < 1:
        return []
    chosen = np.unique(np.linspace(0, len(slices) - 1, min(count, len(slices))).round().astype(int))
    batches = []
    for i in chosen:
        item = slices[int(i)]
        cropped = EnhancementSlice(centre_crop(item.image, max_size, spec.scale), item.source, item.index, item.axis)
        degraded, clean = fixed_pair(cropped, spec, seed)
        batches.append((torch.from_numpy(degraded[None, None].copy()), torch.from_numpy(clean[None, None].copy())))
    return batches
