"""The image type every reader returns: pixels plus the geometry and provenance downstream code needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MedicalImage:
    """Pixels with metadata, as MONAI's MetaTensor carries them but independent of torch.

    Conventions (every reader follows them):
    - ``array`` is channel-first: ``(C, *spatial)``; C is 1 for grey, 3 for RGB, >1 for multi-frame
      colour never (frames become a spatial axis). 2D images have spatial ``(rows, cols)``.
      3D volumes keep the array order of their file (NIfTI: i, j, k; DICOM series: columns, rows,
      slices), and ``affine`` says what that order means.
    - ``affine`` is a 4x4 matrix mapping a spatial voxel index (in array order, padded with zeros to
      3 axes) to world coordinates in millimetres, RAS+ (as nibabel and MONAI use; DICOM's LPS is
      converted).
    - ``spacing``, ``origin`` have one entry per spatial axis; ``direction`` is the
      ``ndim x ndim`` matrix of unit axis directions (columns), in RAS+.
    - Intensities are physical where the file says how: CT in Hounsfield units after
      RescaleSlope/Intercept; MONOCHROME1 already inverted so that high means bright.
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: np.ndarray
    affine: np.ndarray
    modality: str = "OT"
    photometric: str = "MONOCHROME2"
    rescale: tuple[float, float] | None = None
    source: str = ""
    format: str = ""
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_ndim(self) -> int:
        return self.array.ndim - 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[1:])

    @property
    def channels(self) -> int:
        return int(self.array.shape[0])


#: Provenance marks that travel with a file (NIfTI ``descrip``, PNG text chunk) so results on such images are
#: always labelled: ``hybrid`` (synthetic lesions in a real image), ``synthetic`` (made by a generative model),
#: ``enhanced`` (denoised or super-resolved by a network), ``deformed`` (one template under synthetic deformations,
#: ``medlearn data landmarks``).
PROVENANCE_MARKS: tuple[str, ...] = ("hybrid", "synthetic", "enhanced", "deformed")


def provenance_marks(tags: dict[str, Any]) -> list[str]:
    """The provenance marks set in ``tags``, in :data:`PROVENANCE_MARKS` order."""
    return [mark for mark in PROVENANCE_MARKS if tags.get(mark)]
