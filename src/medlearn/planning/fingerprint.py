"""What a segmentation dataset looks like: spacings, sizes, foreground intensities, class frequencies.

Measured once from the image/mask pairs, it is all the planner needs. Each mask must share its
image's geometry; a mismatch is an error naming both files, because a silently resampled or shifted
mask trains a model on the wrong voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from medlearn.data.records import Sample
from medlearn.errors import MedlearnError

#: Foreground voxels sampled per case for the intensity statistics (as nnU-Net does, bounded cost).
FOREGROUND_SAMPLES = 10_000
GEOMETRY_TOLERANCE_MM = 1e-3


@dataclass
class CaseFingerprint:
    source: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    channels: int
    modality: str
    label_voxels: dict[int, int]
    #: Share of voxels that are not exactly 0 (less than 1 on skull-stripped or cropped MR: a body mask).
    nonzero_fraction: float = 1.0


@dataclass
class DatasetFingerprint:
    cases: list[CaseFingerprint]
    spatial_dims: int
    modality: str
    foreground_intensity: dict[str, float]
    labels: list[int]

    @property
    def spacings(self) -> np.ndarray:
        return np.array([c.spacing for c in self.cases], dtype=float)

    @property
    def channels(self) -> int:
        """The channel count every case shares (the network's input channels)."""
        counts = sorted({c.channels for c in self.cases})
        if len(counts) > 1:
            raise MedlearnError(f"the images have different channel counts {counts}; segment them separately")
        return counts[0]

    @property
    def shapes(self) -> np.ndarray:
        return np.array([c.shape for c in self.cases], dtype=float)

    def class_frequencies(self) -> dict[int, float]:
        """Share of all voxels per label (0 = background)."""
        totals: dict[int, int] = {}
        for case in self.cases:
            for label, count in case.label_voxels.items():
                totals[label] = totals.get(label, 0) + count
        everything = sum(totals.values())
        return {label: count / everything for label, count in sorted(totals.items())}

    def to_dict(self) -> dict:
        values = asdict(self)
        values["class_frequencies"] = {str(k): v for k, v in self.class_frequencies().items()}
        for case in values["cases"]:
            case["label_voxels"] = {str(k): v for k, v in case["label_voxels"].items()}
        return values


def fingerprint(samples: Sequence[Sample], *, modality: str | None = None, seed: int = 0) -> DatasetFingerprint:
    """Read every image/mask pair once and summarise it (masks must match their images' geometry).

    ``modality`` names it for formats that do not record one (NIfTI, NRRD, TIFF say "OT").
    """
    from medlearn.io import load

    if not samples:
        raise MedlearnError("no image/mask pairs to fingerprint")
    rng = np.random.default_rng(seed)
    cases, foreground = [], []
    for sample in samples:
        if sample.target is None:
            raise MedlearnError("no mask given for this image", sample.path)
        image, mask = load(sample.path), load(sample.target)
        check_same_geometry(image, mask)
        labels = np.rint(mask.array[0]).astype(np.int64)
        if labels.min() < 0:
            raise MedlearnError(f"mask has negative labels ({labels.min()})", sample.target)
        values, counts = np.unique(labels, return_counts=True)
        intensities = image.array[:, labels > 0].astype(np.float64).ravel()
        if intensities.size:
            take = min(FOREGROUND_SAMPLES, intensities.size)
            foreground.append(rng.choice(intensities, size=take, replace=False))
        cases.append(
            CaseFingerprint(
                source=str(sample.path),
                shape=tuple(int(n) for n in image.spatial_shape),
                spacing=tuple(float(s) for s in image.spacing),
                channels=image.channels,
                modality=(modality or image.modality).upper(),
                label_voxels={int(v): int(c) for v, c in zip(values, counts, strict=True)},
                nonzero_fraction=float(np.count_nonzero(image.array.any(axis=0)) / labels.size),
            )
        )
    dims = {len(c.shape) for c in cases}
    if len(dims) > 1:
        raise MedlearnError("the dataset mixes 2D images and 3D volumes; plan them separately")
    modalities = sorted({c.modality for c in cases})
    pooled = np.concatenate(foreground) if foreground else np.zeros(1)
    stats = {
        "mean": float(pooled.mean()),
        "std": float(pooled.std()),
        "percentile_00_5": float(np.percentile(pooled, 0.5)),
        "percentile_99_5": float(np.percentile(pooled, 99.5)),
        "foreground_voxels_sampled": int(pooled.size if foreground else 0),
    }
    labels = sorted({label for c in cases for label in c.label_voxels})
    return DatasetFingerprint(cases, dims.pop(), modalities[0] if len(modalities) == 1 else "mixed", stats, labels)


def check_same_geometry(image, mask) -> None:
    """A mask must have its image's spatial shape and affine (within a micrometre)."""
    if image.spatial_shape != mask.spatial_shape:
        raise MedlearnError(
            f"mask shape {mask.spatial_shape} does not match image shape {image.spatial_shape} ({image.source})",
            mask.source,
        )
    if not np.allclose(image.affine, mask.affine, atol=GEOMETRY_TOLERANCE_MM):
        raise MedlearnError(
            f"mask geometry (spacing/origin/direction) does not match its image {image.source}", mask.source
        )
    if mask.channels != 1:
        raise MedlearnError(f"a mask must have one channel, this one has {mask.channels}", mask.source)
