"""Segmentation cases as the network sees them: resampled to the plan's spacing and normalised.

The same :func:`prepare_image` runs at training, validation and prediction time, so a model never
sees intensities or spacings it was not trained on. Masks are mapped to contiguous class indices
(``plan.labels[i]`` is the original value of class ``i``); a mask holding a value the plan does not
know is an error naming the mask, because silently dropping a label trains the wrong target.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlearn.data.cases import Case
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError, NonFiniteImageError
from medlearn.io import load
from medlearn.io.image import MedicalImage
from medlearn.io.intensity import apply_normalization
from medlearn.io.orientation import to_canonical
from medlearn.io.resample import resample_array
from medlearn.planning.fingerprint import check_same_geometry
from medlearn.planning.plan import SegmentationPlan

#: Relative spacing difference below which an image is used as it is (no interpolation blur).
SPACING_TOLERANCE = 0.01


#: One image (``(C, *spatial)`` float32, normalised, at the plan's spacing) with its class-index mask.
SegmentationCase = Case


def resampling_ratio(spacing: Sequence[float], plan: SegmentationPlan) -> np.ndarray:
    """Target / original spacing per axis (1 where they differ by less than 1%)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    target = np.asarray(plan.target_spacing, dtype=np.float64)
    if len(target) != len(spacing):
        raise MedlearnError(f"the plan is for {len(target)}D data, this image is {len(spacing)}D")
    ratio = target / spacing
    return np.where(np.abs(ratio - 1.0) < SPACING_TOLERANCE, 1.0, ratio)


def planned_shape(shape: Sequence[int], ratio: Sequence[float]) -> tuple[int, ...]:
    return tuple(max(1, round(n / r)) for n, r in zip(shape, ratio, strict=True))


def normalize_for_plan(array: np.ndarray, plan: SegmentationPlan) -> np.ndarray:
    """The plan's normalisation (:func:`medlearn.planning.normalization.normalize`), as float32."""
    return apply_normalization(array, plan.normalization, plan.normalization_params)


def prepare_image(image: MedicalImage, plan: SegmentationPlan) -> np.ndarray:
    """``(C, *spatial)`` float32 at the plan's spacing (in the closest RAS+ orientation when the plan says
    ``canonical``), normalised; non-finite pixels are an error."""
    if image.channels != plan.channels:
        raise MedlearnError(
            f"the model expects {plan.channels} channel(s), this image has {image.channels}", image.source
        )
    if not np.isfinite(image.array).all():
        raise NonFiniteImageError("image holds NaN or infinite values", image.source)
    if plan.canonical:
        image = to_canonical(image)[0]
    ratio = resampling_ratio(image.spacing, plan)
    array = resample_array(image.array, ratio, planned_shape(image.spatial_shape, ratio), order=1)
    return normalize_for_plan(array, plan)


def class_indices(mask: MedicalImage, labels: Sequence[int]) -> np.ndarray:
    """Mask values mapped to class indices (uint8), refusing values outside ``labels``."""
    values = mask.array[0]
    if not np.issubdtype(values.dtype, np.integer):
        rounded = np.rint(values)
        if not np.allclose(values, rounded):
            raise MedlearnError("mask holds non-integer values; a mask must hold label numbers", mask.source)
        values = rounded.astype(np.int64)
    present = np.unique(values)
    unknown = sorted(set(present.tolist()) - {int(v) for v in labels})
    if unknown:
        raise MedlearnError(
            f"mask holds labels {unknown} that the plan does not know (plan labels {list(labels)})", mask.source
        )
    lookup = np.zeros(int(max(present.max(), max(labels))) + 1, dtype=np.uint8)
    for index, value in enumerate(labels):
        lookup[int(value)] = index
    return lookup[values]


def prepare_case(sample: Sample, plan: SegmentationPlan) -> SegmentationCase:
    """Load an image/mask pair, check they share geometry, and bring both onto the plan's grid."""

    image = load(sample.path)
    array = prepare_image(image, plan)
    labels = None
    if sample.target is not None:
        mask = load(sample.target)
        check_same_geometry(image, mask)
        if plan.canonical:
            image, mask = to_canonical(image)[0], to_canonical(mask)[0]
        indices = class_indices(mask, plan.labels)
        labels = resample_labels(indices, resampling_ratio(image.spacing, plan), array.shape[1:], plan.num_classes)
    return SegmentationCase(image=array, labels=labels, name=sample.path.name, sample=sample)


def resample_labels(indices: np.ndarray, ratio: np.ndarray, shape: Sequence[int], num_classes: int) -> np.ndarray:
    """Class indices on the planned grid: each class's indicator interpolated linearly, then the most likely class
    per voxel (as nnU-Net resamples segmentations), so boundaries stay smooth where nearest-neighbour resampling
    of strongly anisotropic data would give staircases; without resampling the indices come back unchanged."""
    if np.allclose(ratio, 1.0) and tuple(indices.shape) == tuple(shape):
        return indices
    best = np.zeros(tuple(shape), dtype=np.float32)
    labels = np.zeros(tuple(shape), dtype=np.uint8)
    for index in range(num_classes):
        indicator = (indices == index).astype(np.float32)[None]
        share = resample_array(indicator, ratio, shape, order=1)[0]
        better = share > best
        labels[better], best[better] = index, share[better]
    return labels


def prepare_cases(samples: Sequence[Sample], plan: SegmentationPlan) -> list[SegmentationCase]:
    return [prepare_case(sample, plan) for sample in samples]
