"""A region of an image cut out with its geometry, and the way back: what a localise-then-segment cascade needs.

:class:`Crop` holds the voxel window (``low`` inclusive, ``high`` exclusive) on the original grid. :meth:`Crop.apply`
cuts any image of that grid (the image, its mask) and moves the affine's origin to the window's first voxel, so the
cut-out keeps its place in the world; :meth:`Crop.paste` puts an array computed on the cut-out back into an array
of the original shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage


@dataclass(frozen=True)
class Crop:
    low: tuple[int, ...]
    high: tuple[int, ...]
    shape: tuple[int, ...]

    @property
    def window(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.low, self.high, strict=True))

    @property
    def is_whole(self) -> bool:
        return all(a == 0 for a in self.low) and tuple(self.high) == tuple(self.shape)

    def apply(self, image: MedicalImage) -> MedicalImage:
        """The window of ``image`` (of the grid the crop was made on), its affine moved to the window's origin."""
        if image.spatial_shape != tuple(self.shape):
            raise MedlearnError(f"crop made for shape {self.shape}, image has {image.spatial_shape}", image.source)
        if self.is_whole:
            return image
        affine = np.array(image.affine, dtype=np.float64)
        ndim = image.spatial_ndim
        affine[:3, 3] = affine[:3, :ndim] @ np.asarray(self.low, dtype=np.float64) + affine[:3, 3]
        fields = {f.name: getattr(image, f.name) for f in dataclasses.fields(image)}
        for name in ("array", "spacing", "origin", "direction", "affine"):
            fields.pop(name)
        fields["tags"] = {**image.tags, "cropped_from": {"low": list(self.low), "high": list(self.high)}}
        array = np.ascontiguousarray(image.array[(slice(None), *self.window)])
        return image_from_affine(array, affine, **fields)

    def paste(self, array: np.ndarray, fill: float | Sequence[float] = 0) -> np.ndarray:
        """``array`` ``(C, *window)`` placed into ``(C, *shape)``, the rest ``fill`` (one value, or one per channel)."""
        out = np.empty((array.shape[0], *self.shape), dtype=array.dtype)
        out[...] = np.asarray(fill, dtype=array.dtype).reshape(-1, *([1] * len(self.shape)))
        out[(slice(None), *self.window)] = array
        return out


def crop_around(image: MedicalImage, box: np.ndarray | None, margin_mm: float) -> Crop:
    """The window holding ``box`` (voxel-centre extents ``(low..., high...)`` on ``image``'s grid) plus
    ``margin_mm`` on every side, clipped to the image; the whole image when ``box`` is None."""
    shape = tuple(int(n) for n in image.spatial_shape)
    if box is None:
        return Crop(tuple(0 for _ in shape), shape, shape)
    ndim = len(shape)
    box = np.asarray(box, dtype=np.float64)
    margin = np.ceil(float(margin_mm) / np.asarray(image.spacing, dtype=np.float64))
    low = np.clip(np.floor(box[:ndim] - margin), 0, np.asarray(shape) - 1).astype(int)
    high = np.clip(np.ceil(box[ndim:] + margin) + 1, low + 1, shape).astype(int)
    return Crop(tuple(int(v) for v in low), tuple(int(v) for v in high), shape)
