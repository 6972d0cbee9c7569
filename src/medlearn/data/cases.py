"""A training case as named arrays on one spatial grid, so patch sampling and augmentation move them together.

Segmentation needs an image and its label map; registration a second image; detection and landmarks points
and boxes. TorchIO groups such things in a ``Subject``; here a :class:`Case` holds:

- ``image`` ``(C, *spatial)`` and any ``extra_images`` of the same grid (e.g. ``"moving"``): interpolated
  linearly and intensity-augmented;
- ``labels`` ``(*spatial)``: a label map, interpolated by nearest neighbour, never intensity-augmented;
- ``points`` ``(N, ndim)``: voxel coordinates (landmarks, object centres), moved by the same spatial
  transform and dropped when they leave a crop; ``point_radii`` ``(N,)``: each point's object radius in voxels,
  scaled by a zoom and dropped with its point; ``point_ids`` ``(N,)``: which landmark (or class) each point is,
  dropped with its point;
- ``boxes`` ``(N, 2 * ndim)``: ``(low..., high...)`` voxel corners, moved like the points (the box around the
  transformed corners) and clipped to the crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.io.intensity import pad_values


@dataclass
class Case:
    """Named arrays of one case on one spatial grid (see the module docstring)."""

    image: np.ndarray
    labels: np.ndarray | None = None
    name: str = ""
    sample: Sample | None = None
    extra_images: dict[str, np.ndarray] = field(default_factory=dict)
    points: np.ndarray | None = None
    point_radii: np.ndarray | None = None
    point_ids: np.ndarray | None = None
    boxes: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = self.spatial_shape
        if self.labels is not None and tuple(self.labels.shape) != shape:
            raise MedlearnError(f"labels of shape {self.labels.shape} on an image of spatial shape {shape}", self.name)
        for key, array in self.extra_images.items():
            if tuple(array.shape[1:]) != shape:
                raise MedlearnError(f"{key} of spatial shape {array.shape[1:]} on an image of {shape}", self.name)
        for key in ("point_radii", "point_ids"):
            values = getattr(self, key)
            if values is not None and (self.points is None or len(values) != len(self.points)):
                raise MedlearnError(f"{key} needs one value per point", self.name)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.image.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.spatial_shape)

    def with_arrays(self, **changes) -> Case:
        """A copy with some arrays replaced (the others shared, not copied)."""
        return replace(self, **changes)

    def pad_to(self, size: tuple[int, ...], fill: Sequence[float] | None = None) -> Case:
        """At least ``size`` along every axis, at the far end so points and boxes keep their coordinates: labels
        padded with background, images channel by channel with ``fill`` (the normalised background level; None:
        each channel's minimum), never with 0 blindly (after a fixed clip + z-score 0 is mean tissue)."""
        pads = [(0, max(0, wanted - n)) for n, wanted in zip(self.spatial_shape, size, strict=True)]
        if not any(after for _, after in pads):
            return self

        def padded(array: np.ndarray, fill: Sequence[float] | None) -> np.ndarray:
            values = pad_values(array, fill)
            return np.stack(
                [np.pad(channel, pads, constant_values=value) for channel, value in zip(array, values, strict=True)]
            )

        return self.with_arrays(
            image=padded(self.image, fill),
            labels=None if self.labels is None else np.pad(self.labels, pads),
            extra_images={key: padded(array, None) for key, array in self.extra_images.items()},
        )

    def slice_along(self, axis: int, index: int) -> Case:
        """The ``index``-th slice along spatial ``axis`` as a case of one dimension less (points and boxes on
        that slice kept, the axis dropped from their coordinates)."""
        points = radii = ids = boxes = None
        if self.points is not None:
            on_slice = np.rint(self.points[:, axis]) == index
            points = np.delete(self.points[on_slice], axis, axis=1)
            radii = None if self.point_radii is None else self.point_radii[on_slice]
            ids = None if self.point_ids is None else self.point_ids[on_slice]
        if self.boxes is not None:
            ndim = self.ndim
            low, high = self.boxes[:, axis], self.boxes[:, axis + ndim]
            through = (low <= index) & (index <= high)
            kept = self.boxes[through]
            boxes = np.delete(kept, [axis, axis + ndim], axis=1)
        return self.with_arrays(
            image=np.take(self.image, index, axis=axis + 1),
            labels=None if self.labels is None else np.take(self.labels, index, axis=axis),
            extra_images={key: np.take(array, index, axis=axis + 1) for key, array in self.extra_images.items()},
            points=points,
            point_radii=radii,
            point_ids=ids,
            boxes=boxes,
        )
