"""Segmentation cases as the network sees them: resampled to the plan's spacing and normalised.

The same :func:`prepare_image` runs at training, validation and prediction time, so a model never
sees intensities or spacings it was not trained on. Masks are mapped to contiguous class indices
(``plan.labels[i]`` is the original value of class ``i``); a mask holding a value the plan does not
know is an error naming the mask, because silently dropping a label trains the wrong target.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlearn.apps.segmentation.cropping import RegionCropper
from medlearn.data.cases import Case
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.geometry import check_same_geometry
from medlearn.io.image import MedicalImage
from medlearn.io.orientation import to_canonical
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import prepare_image, resample_labels, resampling_ratio

#: One image (``(C, *spatial)`` float32, normalised, at the plan's spacing) with its class-index mask.
SegmentationCase = Case


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


def load_pair(sample: Sample, cropper: RegionCropper | None = None) -> tuple[MedicalImage, MedicalImage | None]:
    """An image and its mask (None without one), checked to share geometry, both cut to the localised region when
    a ``cropper`` is given."""
    image = load(sample.path)
    mask = None if sample.target is None else load(sample.target)
    if mask is not None:
        check_same_geometry(image, mask)
    if cropper is not None:
        crop = cropper.region(image)
        image, mask = crop.apply(image), None if mask is None else crop.apply(mask)
    return image, mask


def prepare_case(sample: Sample, plan: SegmentationPlan, cropper: RegionCropper | None = None) -> SegmentationCase:
    """Load an image/mask pair (cut to the localised region with a ``cropper``), check they share geometry, and
    bring both onto the plan's grid."""

    image, mask = load_pair(sample, cropper)
    array = prepare_image(image, plan)
    labels = None
    if mask is not None:
        if plan.canonical:
            image, mask = to_canonical(image)[0], to_canonical(mask)[0]
        indices = class_indices(mask, plan.labels)
        labels = resample_labels(indices, resampling_ratio(image.spacing, plan), array.shape[1:], plan.num_classes)
    return SegmentationCase(image=array, labels=labels, name=sample.path.name, sample=sample)


def prepare_cases(
    samples: Sequence[Sample], plan: SegmentationPlan, cropper: RegionCropper | None = None
) -> list[SegmentationCase]:
    return [prepare_case(sample, plan, cropper) for sample in samples]
