"""An image brought onto a plan's grid: closest RAS+ orientation (3D), the plan's spacing, its normalisation.

The same :func:`prepare_image` runs at training, validation and prediction time of every dense task
(segmentation, detection), so a model never sees intensities or spacings it was not trained on;
:func:`planned_affine` says where the prepared grid lies in the world, so points and predictions map back
to the input's own voxels exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlearn.errors import MedlearnError, NonFiniteImageError
from medlearn.io.image import MedicalImage
from medlearn.io.intensity import apply_normalization
from medlearn.io.orientation import to_canonical
from medlearn.io.resample import resample_array
from medlearn.planning.plan import SegmentationPlan

#: Relative spacing difference below which an image is used as it is (no interpolation blur).
SPACING_TOLERANCE = 0.01


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


def planned_affine(image: MedicalImage, plan: SegmentationPlan) -> np.ndarray:
    """The 4x4 voxel-to-world (RAS mm) affine of ``prepare_image(image, plan)``'s grid: the (canonical) image's
    affine with each axis step scaled by the resampling ratio (voxel ``i`` lies at input voxel ``i * ratio``)."""
    oriented = to_canonical(image)[0] if plan.canonical else image
    affine = np.array(oriented.affine, dtype=np.float64)
    affine[:3, : oriented.spatial_ndim] *= resampling_ratio(oriented.spacing, plan)
    return affine


def prepare_label_map(labels: np.ndarray, image: MedicalImage, plan: SegmentationPlan) -> np.ndarray:
    """A label or instance map ``(*spatial)`` on ``image``'s grid brought onto the plan's grid by nearest
    neighbour (object ids stay ids; no interpolation between them)."""
    if tuple(labels.shape) != image.spatial_shape:
        raise MedlearnError(f"label map of shape {labels.shape} on an image of {image.spatial_shape}", image.source)
    array = labels[None]
    if plan.canonical:
        oriented, reorientation = to_canonical(image)
        array = reorientation.apply(array)
    else:
        oriented = image
    ratio = resampling_ratio(oriented.spacing, plan)
    return resample_array(array, ratio, planned_shape(oriented.spatial_shape, ratio), order=0)[0]


def map_voxels(voxels: np.ndarray, source_affine: np.ndarray, target_affine: np.ndarray) -> np.ndarray:
    """``(N, d)`` voxel coordinates under ``source_affine`` -> the same world points' voxel coordinates under
    ``target_affine`` (both 4x4 voxel-to-RAS; 2D grids use their first two axis columns)."""
    voxels = np.atleast_2d(np.asarray(voxels, dtype=np.float64))
    ndim = voxels.shape[1]
    world = voxels @ np.asarray(source_affine)[:3, :ndim].T + np.asarray(source_affine)[:3, 3]
    steps, origin = np.asarray(target_affine)[:3, :ndim], np.asarray(target_affine)[:3, 3]
    if not len(voxels):
        return np.zeros((0, ndim))
    solution, *_ = np.linalg.lstsq(steps, (world - origin).T, rcond=None)
    return solution.T
