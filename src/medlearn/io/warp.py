"""Geometry between images: resampling one image onto another's grid (through their affines, in world
millimetres) and warping an image by a displacement field, what registration and atlas-label mapping need.

Conventions, the ones ITK, ANTs and 3D Slicer use (in RAS instead of LPS):

- the world position of voxel index ``i`` (array order, padded with zeros to 3D) is ``affine @ [i, 1]``;
- a displacement field lives on a *fixed* grid: ``field`` ``(d, *spatial)`` holds, for each fixed voxel, the
  vector (mm, RAS world axes) from the voxel's world position to the position in the moving image whose value it
  takes: ``warped(x) = moving(x + field(x))``. Identity is a zero field.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from medlearn.errors import MedlearnError
from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage


def voxel_grid_world(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World positions (mm, RAS) of every voxel of a grid: ``(3, *shape)``."""
    indices = np.indices(shape, dtype=np.float64).reshape(len(shape), -1)
    padded = np.zeros((4, indices.shape[1]))
    padded[: len(shape)] = indices
    padded[3] = 1.0
    return (np.asarray(affine, float) @ padded)[:3].reshape(3, *shape)


def sample_at_world(image: MedicalImage, world: np.ndarray, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """``image`` interpolated at world positions ``(3, *out_shape)``: ``(C, *out_shape)``; outside the image ``cval``.

    ``order=0`` (nearest) keeps the dtype, for label maps; higher orders return float32.
    """
    ndim = image.spatial_ndim
    out_shape = world.shape[1:]
    flat = world.reshape(3, -1)
    homogeneous = np.vstack([flat, np.ones((1, flat.shape[1]))])
    voxel = (np.linalg.inv(image.affine) @ homogeneous)[:ndim]
    if ndim < 3:
        off_plane = np.abs((np.linalg.inv(image.affine) @ homogeneous)[2])
        voxel = np.where(off_plane <= 0.5, voxel, -1e9)  # a 2D image has one slice: off it is outside
    dtype = image.array.dtype if order == 0 else np.dtype(np.float32)
    channels = [
        ndimage.map_coordinates(
            np.asarray(channel, np.float32 if order else channel.dtype), voxel, order=order, mode="constant", cval=cval
        ).reshape(out_shape)
        for channel in image.array
    ]
    return np.stack(channels).astype(dtype, copy=False)


def resample_to_reference(image: MedicalImage, reference: MedicalImage, order: int = 1) -> MedicalImage:
    """``image`` on ``reference``'s grid (shape and affine), by world position: the images may differ in spacing,
    origin, orientation and extent; what lies outside ``image`` becomes 0. ``order=0`` for label maps."""
    world = voxel_grid_world(reference.spatial_shape, reference.affine)
    array = sample_at_world(image, world, order=order)
    return _on_grid(image, array, reference)


def warp(moving: MedicalImage, field: MedicalImage, order: int = 1) -> MedicalImage:
    """``moving`` warped by a displacement ``field`` (mm, see the module docstring) onto the field's grid."""
    if field.channels != 3 and field.channels != field.spatial_ndim:
        raise MedlearnError(
            f"a displacement field needs one channel per world axis, this one has {field.channels}", field.source
        )
    vectors = np.zeros((3, *field.spatial_shape))
    vectors[: field.channels] = field.array
    world = voxel_grid_world(field.spatial_shape, field.affine) + vectors
    return _on_grid(moving, sample_at_world(moving, world, order=order), field)


def _on_grid(source: MedicalImage, array: np.ndarray, grid: MedicalImage) -> MedicalImage:
    """A copy of ``source`` (modality, tags, ...) holding ``array`` on ``grid``'s geometry."""
    fields = {f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
    for name in ("array", "spacing", "origin", "direction", "affine"):
        fields.pop(name)
    return image_from_affine(array, grid.affine.copy(), **fields)
