"""Affine bookkeeping shared by the readers: the 4x4 RAS affine is the single source of truth, and
spacing, origin and direction are derived from it so they can never disagree."""

from __future__ import annotations

from typing import Any

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.io.image import MedicalImage

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM and most NRRD files use LPS+ world coordinates; flipping x and y gives RAS+."""


def affine_from_axes(axes: list[np.ndarray], origin: np.ndarray) -> np.ndarray:
    """4x4 affine whose columns are the per-axis step vectors (up to 3, padded) and the origin.

    A missing third axis (2D image) gets the unit normal of the first two, so the matrix stays
    invertible and orientation codes remain meaningful.
    """
    affine = np.eye(4)
    for i, step in enumerate(axes[:3]):
        affine[:3, i] = step
    if len(axes) == 2:
        normal = np.cross(axes[0], axes[1])
        norm = np.linalg.norm(normal)
        affine[:3, 2] = normal / norm if norm > 0 else (0.0, 0.0, 1.0)
    affine[:3, 3] = origin
    return affine


def image_from_affine(array: np.ndarray, affine: np.ndarray, **fields: Any) -> MedicalImage:
    """Build a :class:`MedicalImage` with spacing/origin/direction derived from ``affine``."""
    ndim = array.ndim - 1
    affine = np.asarray(affine, dtype=np.float64)
    steps = affine[:3, :ndim]
    spacing = np.linalg.norm(steps, axis=0)
    spacing = np.where(spacing > 0, spacing, 1.0)
    direction = (affine[:ndim, :ndim] / spacing[:ndim]).copy()
    return MedicalImage(
        array=array,
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in affine[:ndim, 3]),
        direction=direction,
        affine=affine,
        **fields,
    )


def orientation_code(affine: np.ndarray, ndim: int = 3) -> str:
    """Axis codes such as ``"RAS"`` or ``"LPS"`` (nibabel), one letter per spatial axis."""
    from nibabel.orientations import aff2axcodes

    codes = aff2axcodes(np.asarray(affine, dtype=np.float64))
    return "".join(c if c is not None else "?" for c in codes[: max(1, min(ndim, 3))])


def thickest_axis(spacing: tuple[float, ...] | list[float]) -> int:
    """The slice axis of a volume: the one with the coarsest spacing (the last one on ties)."""
    spacing = np.asarray(spacing, dtype=float)
    return int(len(spacing) - 1 - np.argmax(spacing[::-1]))


def world_to_voxel(image: MedicalImage, world: np.ndarray) -> np.ndarray:
    """Voxel coordinates of a world point (RAS mm). A 2D image takes ``x, y`` (or ``x, y, z``): its plane's
    in-plane coordinates are solved from the affine's rows for the given world axes."""
    ndim = image.spatial_ndim
    world = np.asarray(world, dtype=np.float64)
    steps, origin = image.affine[:3, :ndim], image.affine[:3, 3]
    rows = slice(0, len(world))
    solution, *_ = np.linalg.lstsq(steps[rows], world - origin[rows], rcond=None)
    return solution


def voxel_to_world(affine: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    """``(N, 3)`` world (RAS mm) coordinates of ``(N, d)`` voxel coordinates under a 4x4 affine."""
    voxels = np.atleast_2d(np.asarray(voxels, dtype=np.float64))
    steps = np.asarray(affine)[:3, : voxels.shape[1]]
    return voxels @ steps.T + np.asarray(affine)[:3, 3]


#: Affines closer than this (mm) describe the same grid.
GEOMETRY_TOLERANCE_MM = 1e-3


def check_same_geometry(image: MedicalImage, mask: MedicalImage) -> None:
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
