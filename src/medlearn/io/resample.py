"""Resampling to a target voxel spacing with exact geometry bookkeeping.

The first voxel centre stays where it is and voxel ``i`` of the output lies at ``i * new_spacing``
along each axis, so the new affine is the old one with its axis columns rescaled; the output
covers the same extent (``round(n * old / new)`` voxels). Use ``order=0`` for label masks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from medlearn.errors import MedlearnError
from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage


def _target(image: MedicalImage, spacing: float | Sequence[float | None]) -> np.ndarray:
    ndim = image.spatial_ndim
    wanted = [spacing] * ndim if np.isscalar(spacing) else list(spacing)
    if len(wanted) != ndim:
        raise MedlearnError(f"need {ndim} spacings for a {ndim}D image, got {len(wanted)}", image.source)
    target = np.array([old if new is None else float(new) for old, new in zip(image.spacing, wanted, strict=True)])
    if np.any(target <= 0):
        raise MedlearnError(f"spacing must be positive, got {tuple(target)}", image.source)
    return target


def resample_to_spacing(image: MedicalImage, spacing: float | Sequence[float | None], order: int = 1) -> MedicalImage:
    """A new image with the given spacing (mm; ``None`` keeps an axis) via spline interpolation.

    ``order=0`` (nearest) keeps the dtype and label values; higher orders return float32.
    """
    old = np.asarray(image.spacing, dtype=np.float64)
    new = _target(image, spacing)
    ratio = new / old
    shape = tuple(max(1, round(n / r)) for n, r in zip(image.spatial_shape, ratio, strict=True))
    array = resample_array(image.array, ratio, shape, order=order)
    affine = image.affine.copy()
    affine[:3, : image.spatial_ndim] *= ratio
    fields = {f.name: getattr(image, f.name) for f in dataclasses.fields(image)}
    for name in ("array", "spacing", "origin", "direction", "affine"):
        fields.pop(name)
    fields["tags"] = {**image.tags, "resampled_from_spacing": tuple(image.spacing)}
    return image_from_affine(array, affine, **fields)


def resample_array(array: np.ndarray, ratio: Sequence[float], shape: Sequence[int], order: int = 1) -> np.ndarray:
    """Resample a channel-first ``(C, *spatial)`` array onto a grid of ``shape`` whose voxel ``i`` lies at
    input voxel ``i * ratio`` (first voxel centres coincide), as :func:`resample_to_spacing` does.

    Going back to an original grid (predictions) passes that grid's exact ``shape`` and the inverse
    ratio. ``order=0`` keeps the dtype (labels); higher orders return float32.
    """
    ratio = np.asarray(ratio, dtype=np.float64)
    shape = tuple(int(n) for n in shape)
    if np.allclose(ratio, 1.0) and tuple(array.shape[1:]) == shape:
        return array if order == 0 else array.astype(np.float32, copy=False)
    if order == 0:  # nearest: keep dtype (bool goes through uint8, which scipy supports)
        dtype = array.dtype
        source = array.view(np.uint8) if dtype.kind == "b" else array
    else:
        dtype = np.dtype(np.float32)
        source = array.astype(np.float32, copy=False)
    resampled = [
        ndimage.affine_transform(channel, ratio, output_shape=shape, order=order, mode="nearest") for channel in source
    ]
    return np.stack(resampled).astype(dtype, copy=False)
