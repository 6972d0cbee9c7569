"""What a segmentation dataset looks like: spacings, sizes, intensities, foreground shares, class frequencies.

Measured once from the image/mask pairs, it is all the planner needs: the intensities of every case's
foreground and background and its foreground share decide the normalisation
(:mod:`medlearn.planning.normalization`). Each mask must share its
image's geometry; a mismatch is an error naming both files, because a silently resampled or shifted
mask trains a model on the wrong voxels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.geometry import check_same_geometry
from medlearn.io.image import MedicalImage
from medlearn.io.orientation import to_canonical
from medlearn.planning.normalization import QUANTILES, CaseIntensity, pooled_scale

#: Foreground voxels sampled per case for the intensity statistics (as nnU-Net does, bounded cost); as many
#: background voxels and as many voxels drawn from the whole image are sampled too.
FOREGROUND_SAMPLES = 10_000


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
    #: Storage type of the image's pixels (uint8, uint16, int16, float32, ...).
    dtype: str = ""
    #: Share of voxels with a label > 0.
    foreground_share: float = 0.0
    #: Median intensity per channel of the foreground (None when the mask is empty) and of the background.
    foreground_median: list[float] | None = None
    background_median: list[float] = field(default_factory=list)
    #: Quantiles per channel (at ``normalization.QUANTILES`` percent) of the foreground and the background.
    foreground_quantiles: list[list[float]] | None = None
    background_quantiles: list[list[float]] | None = None
    #: Mean and standard deviation per channel, over all voxels and over the non-zero ones (what a per-image
    #: z-score would use).
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    nonzero_mean: list[float] = field(default_factory=list)
    nonzero_std: list[float] = field(default_factory=list)

    def intensity(self) -> CaseIntensity:
        return CaseIntensity(
            dtype=self.dtype,
            modality=self.modality,
            foreground_share=self.foreground_share,
            foreground_median=self.foreground_median,
            background_median=self.background_median,
            foreground_quantiles=self.foreground_quantiles,
            background_quantiles=self.background_quantiles,
            nonzero_fraction=self.nonzero_fraction,
            mean=self.mean,
            std=self.std,
            nonzero_mean=self.nonzero_mean,
            nonzero_std=self.nonzero_std,
        )


@dataclass
class DatasetFingerprint:
    cases: list[CaseFingerprint]
    spatial_dims: int
    modality: str
    foreground_intensity: dict[str, float]
    labels: list[int]
    #: Per channel: clip (0.5-99.5 percentiles) and mean/std of a sample drawn equally from every case's
    #: foreground and background (the ``dataset`` normalisation's parameters).
    dataset_scale: dict[str, list[float]] = field(default_factory=dict)
    #: The same over every case's non-zero voxels only (the ``dataset`` parameters when a zero background
    #: surrounds the object, as in skull-stripped or template MR: the zeros would halve the mean and double
    #: the spread, squeezing the tissue contrast).
    nonzero_scale: dict[str, list[float]] = field(default_factory=dict)
    #: Percentiles 0, 1, ..., 100 of channel 0 over all voxels, every case weighted equally (for comparing
    #: the intensities of evaluated images with the training data's).
    intensity_percentiles: list[float] = field(default_factory=list)

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

    def intensities(self) -> list[CaseIntensity]:
        return [case.intensity() for case in self.cases]

    def to_dict(self) -> dict:
        values = asdict(self)
        values["class_frequencies"] = {str(k): v for k, v in self.class_frequencies().items()}
        for case in values["cases"]:
            case["label_voxels"] = {str(k): v for k, v in case["label_voxels"].items()}
        return values


def fingerprint(samples: Sequence[Sample], *, modality: str | None = None, seed: int = 0) -> DatasetFingerprint:
    """Read every image/mask pair once and summarise it (masks must match their images' geometry). Volumes are
    measured in their closest RAS+ orientation (:mod:`medlearn.io.orientation`), so shapes and spacings of a
    dataset that mixes sagittal and axial files are compared axis by anatomical axis.

    ``modality`` names it for formats that do not record one (NIfTI, NRRD, TIFF say "OT").
    """

    if not samples:
        raise MedlearnError("no image/mask pairs to fingerprint")
    for sample in samples:
        if sample.target is None:
            raise MedlearnError("no mask given for this image", sample.path)
    pairs = ((str(sample.path), load(sample.path), load(sample.target)) for sample in samples)
    return fingerprint_pairs(pairs, modality=modality, seed=seed)


def fingerprint_pairs(
    pairs: Iterable[tuple[str, MedicalImage, MedicalImage]], *, modality: str | None = None, seed: int = 0
) -> DatasetFingerprint:
    """:func:`fingerprint` of ``(source, image, mask)`` triples already in memory (read one at a time from an
    iterator): detection fingerprints its images with masks drawn from point annotations."""

    rng, nonzero_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    cases, foreground, balanced, anywhere, nonzero_samples = [], [], [], [], []
    for source, image, mask in pairs:
        check_same_geometry(image, mask)
        image, mask = to_canonical(image)[0], to_canonical(mask)[0]
        labels = np.rint(mask.array[0]).astype(np.int64)
        if labels.min() < 0:
            raise MedlearnError(f"mask has negative labels ({labels.min()})", mask.source or source)
        values, counts = np.unique(labels, return_counts=True)
        inside = labels > 0
        channels = image.array.reshape(image.channels, -1)
        fg_values = _sample_columns(channels[:, inside.ravel()], rng)
        bg_values = _sample_columns(channels[:, ~inside.ravel()], rng)
        if fg_values.shape[1]:
            foreground.append(fg_values.ravel())
        balanced += [part for part in (fg_values, bg_values) if part.shape[1]]
        anywhere.append(_sample_columns(channels[:1], rng)[0])
        nonzero = channels[:, image.array.any(axis=0).ravel()]
        if nonzero.size:
            nonzero_samples.append(_sample_columns(nonzero, nonzero_rng))
        cases.append(
            CaseFingerprint(
                source=source,
                shape=tuple(int(n) for n in image.spatial_shape),
                spacing=tuple(float(s) for s in image.spacing),
                channels=image.channels,
                modality=(modality or image.modality).upper(),
                label_voxels={int(v): int(c) for v, c in zip(values, counts, strict=True)},
                nonzero_fraction=float(np.count_nonzero(image.array.any(axis=0)) / labels.size),
                dtype=str(image.array.dtype),
                foreground_share=float(inside.mean()),
                foreground_median=np.median(fg_values, axis=1).tolist() if fg_values.shape[1] else None,
                background_median=np.median(bg_values, axis=1).tolist() if bg_values.shape[1] else [0.0],
                foreground_quantiles=_quantiles(fg_values) if fg_values.shape[1] else None,
                background_quantiles=_quantiles(bg_values) if bg_values.shape[1] else None,
                mean=channels.mean(axis=1, dtype=np.float64).tolist(),
                std=channels.std(axis=1, dtype=np.float64).tolist(),
                nonzero_mean=nonzero.mean(axis=1, dtype=np.float64).tolist() if nonzero.size else [0.0],
                nonzero_std=nonzero.std(axis=1, dtype=np.float64).tolist() if nonzero.size else [1.0],
            )
        )
    if not cases:
        raise MedlearnError("no image/mask pairs to fingerprint")
    dims = {len(c.shape) for c in cases}
    if len(dims) > 1:
        raise MedlearnError("the dataset mixes 2D images and 3D volumes; plan them separately")
    channel_counts = {c.channels for c in cases}
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
    return DatasetFingerprint(
        cases,
        dims.pop(),
        modalities[0] if len(modalities) == 1 else "mixed",
        stats,
        labels,
        dataset_scale=pooled_scale(balanced) if len(channel_counts) == 1 else {},
        nonzero_scale=pooled_scale(nonzero_samples) if len(channel_counts) == 1 and nonzero_samples else {},
        intensity_percentiles=np.percentile(np.concatenate(anywhere), np.arange(101)).tolist(),
    )


def _quantiles(values: np.ndarray) -> list[list[float]]:
    """Per-channel quantiles of ``(C, n)`` samples at the percent levels the normalisation rule uses."""
    return np.percentile(values, QUANTILES, axis=1).T.tolist()


def _sample_columns(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to ``FOREGROUND_SAMPLES`` columns of a ``(C, n)`` array, drawn without replacement (as float64)."""
    if values.shape[1] > FOREGROUND_SAMPLES:
        values = values[:, rng.choice(values.shape[1], size=FOREGROUND_SAMPLES, replace=False)]
    return values.astype(np.float64)
