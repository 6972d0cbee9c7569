"""The closest canonical (RAS+) orientation of a volume, and the way back.

Volumes come stored sagittal, coronal or axial, with axes flipped or permuted; a planner that takes the
median of shapes and spacings per array axis would mix anatomical axes across such a dataset, and a
network would see the anatomy in whatever order each file stores it. Reorienting every 3D volume to its
closest RAS+ axes first (nibabel's ``io_orientation``: a permutation and flips, no interpolation) makes
array axis 0 run left-to-right, 1 posterior-to-anterior, 2 inferior-to-superior; predictions are mapped
back with :meth:`Reorientation.undo`, so outputs keep the input's own array order. 2D images are left as
they are (a single slice has no mixed-plane problem).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from nibabel import orientations

from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage

_CANONICAL = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])


@dataclass(frozen=True)
class Reorientation:
    """The permutation and flips from an image's array axes to the closest RAS+ axes (nibabel ``ornt``)."""

    ornt: np.ndarray
    shape: tuple[int, ...]

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.ornt, _CANONICAL[: len(self.shape)]))

    def apply(self, array: np.ndarray) -> np.ndarray:
        """``(C, *spatial)`` in the original array order -> canonical order."""
        if self.is_identity:
            return array
        return np.stack([orientations.apply_orientation(channel, self.ornt) for channel in array])

    def undo(self, array: np.ndarray) -> np.ndarray:
        """``(C, *spatial)`` in canonical order -> the original array order."""
        if self.is_identity:
            return array
        back = orientations.ornt_transform(_CANONICAL, self.ornt)
        return np.stack([orientations.apply_orientation(channel, back) for channel in array])


def to_canonical(image: MedicalImage) -> tuple[MedicalImage, Reorientation]:
    """``image`` with its array and affine in the closest RAS+ orientation (3D; 2D images unchanged), and the
    transform that undoes it for arrays on the canonical grid."""
    shape = image.spatial_shape
    if image.spatial_ndim != 3:
        return image, Reorientation(_CANONICAL[: image.spatial_ndim].copy(), shape)
    ornt = orientations.io_orientation(image.affine)
    transform = Reorientation(ornt, shape)
    if transform.is_identity:
        return image, transform
    affine = image.affine @ orientations.inv_ornt_aff(ornt, shape)
    fields = {f.name: getattr(image, f.name) for f in dataclasses.fields(image)}
    for name in ("array", "spacing", "origin", "direction", "affine"):
        fields.pop(name)
    return image_from_affine(np.ascontiguousarray(transform.apply(image.array)), affine, **fields), transform
