"""The objects of one image, from whatever annotation the user has, in world millimetres.

A detection CSV lists ``image,annotation[,group]``; the annotation of an image is one of:

- a label or instance **mask** (any image format medlearn reads, same geometry as the image): each connected
  component of each non-zero value is an object (so instance ids and binary masks both work); its centre is the
  component's centroid, its radius that of the disc/sphere of the same area/volume, and a candidate inside it
  is a hit;
- a **points** file (:mod:`medlearn.io.markups`: CSV ``i,j[,k]`` or ``x,y[,z]``, 3D Slicer ``.fcsv`` /
  ``.mrk.json``): objects at the points, with the file's ``radius_mm`` or the run's default radius;
- a **boxes** CSV (``label,x0,y0[,z0],x1,y1[,z1]``, mm): objects filling the boxes, centred in them;
- nothing (an empty cell): a negative image, which teaches the detector what is not an object.

Points outside the image, with the wrong number of coordinates or not finite are errors naming the annotation
file; exact duplicates (the same point twice) are one object, with a warning (a double click in a viewer
should not count as two findings that can be missed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from medlearn.data.heatmaps import ball_mask
from medlearn.data.records import Sample
from medlearn.data.sources import pairs_from_folder, samples_from_csv
from medlearn.errors import MedlearnError
from medlearn.evaluation.detection import Targets
from medlearn.io import load
from medlearn.io.geometry import check_same_geometry, world_to_voxel
from medlearn.io.image import MedicalImage
from medlearn.io.markups import BoxSet, PointSet, points_on_image, read_annotation_file

log = logging.getLogger("medlearn")

#: Suffixes of annotation files read as point or box lists (anything else is read as a mask image).
MARKUP_SUFFIXES = (".csv", ".fcsv", ".json")
#: Two annotated points closer than this (mm) are the same point.
DUPLICATE_TOLERANCE_MM = 1e-6


@dataclass
class ImageObjects:
    """Objects of one image on its own grid: centres (voxel indices) and radii (mm), with an object map when
    the annotation outlines them (mask, boxes)."""

    centres: np.ndarray  # (N, d) voxel coordinates of the image as loaded
    radius_mm: np.ndarray  # (N,)
    labels: tuple[str, ...]
    names: tuple[str, ...]
    #: (*spatial) int32: 0 background, n + 1 = object n (None for points: they have no outline).
    object_map: np.ndarray | None
    #: "mask", "points", "boxes" or "none" (a negative image).
    kind: str
    source: str = ""

    def __len__(self) -> int:
        return len(self.centres)

    def targets(self, spacing) -> Targets:
        """The evaluation's view: hit = inside the object's outline or within its radius of its centre."""
        return Targets(
            centres=self.centres,
            radii_mm=self.radius_mm,
            spacing=tuple(float(s) for s in spacing),
            instance_map=self.object_map,
            labels=self.labels,
        )

    def mask(self, image: MedicalImage) -> MedicalImage:
        """A binary object mask on the image's grid (the outline, or a ball of the radius around each point),
        for the dataset fingerprint and foreground-aware patch sampling."""
        if self.object_map is not None:
            array = (self.object_map > 0).astype(np.uint8)
        else:
            array = ball_mask(image.spatial_shape, self.centres, self.radius_mm, image.spacing)
        return MedicalImage(
            array=array[None],
            spacing=image.spacing,
            origin=image.origin,
            direction=image.direction,
            affine=image.affine,
            source=self.source,
        )


def load_detection_samples(source: str | Path) -> list[Sample]:
    """``image,annotation[,group]`` rows of a CSV (an empty annotation = a negative image), or a folder with
    ``images/`` and ``masks/``; ``Sample.target`` is the annotation file."""
    path = Path(source)
    if path.suffix.lower() != ".csv":
        return pairs_from_folder(path)
    samples = samples_from_csv(path)
    if not any(sample.target is not None for sample in samples):
        raise MedlearnError("no row has an annotation (an 'annotation' column naming masks or point files)", path)
    return samples


def read_objects(sample: Sample, image: MedicalImage, *, default_radius_mm: float) -> ImageObjects:
    """The objects that ``sample``'s annotation marks on ``image``."""
    if sample.target is None:
        return _no_objects(image, "none", str(sample.path))
    target = Path(sample.target)
    if target.name.lower().endswith(MARKUP_SUFFIXES):
        markup = read_annotation_file(target)
        if isinstance(markup, BoxSet):
            return objects_from_boxes(markup, image)
        return objects_from_points(markup, image, default_radius_mm=default_radius_mm)
    return objects_from_mask(load(target), image)


def objects_from_mask(mask: MedicalImage, image: MedicalImage) -> ImageObjects:
    """Each connected component (faces, edges and corners touching) of each non-zero mask value is an object."""
    check_same_geometry(image, mask)
    values = np.rint(mask.array[0]).astype(np.int64)
    structure = ndimage.generate_binary_structure(values.ndim, values.ndim)
    object_map = np.zeros(values.shape, dtype=np.int32)
    labels: list[str] = []
    for value in np.unique(values):
        if value == 0:
            continue
        components, count = ndimage.label(values == value, structure=structure)
        object_map[components > 0] = components[components > 0] + len(labels)
        labels += [str(int(value))] * count
    count = len(labels)
    if not count:
        return _no_objects(image, "mask", mask.source)
    index = np.arange(1, count + 1)
    centres = np.array(ndimage.center_of_mass(np.ones(values.shape), object_map, index), dtype=np.float64)
    voxels = ndimage.sum_labels(np.ones(values.shape), object_map, index)
    size = voxels * float(np.prod(image.spacing))  # area (mm^2) or volume (mm^3)
    radius = np.sqrt(size / np.pi) if values.ndim == 2 else np.cbrt(3.0 * size / (4.0 * np.pi))
    return ImageObjects(
        centres.reshape(count, values.ndim), radius, tuple(labels), ("",) * count, object_map, "mask", mask.source
    )


def objects_from_points(points: PointSet, image: MedicalImage, *, default_radius_mm: float) -> ImageObjects:
    """Objects at annotated points (index or world coordinates), checked to lie inside the image."""
    centres = points_on_image(points, image)
    radius = np.where(np.isnan(points.radius_mm), float(default_radius_mm), points.radius_mm)
    keep = _first_of_duplicates(centres, image.spacing, points.source)
    return ImageObjects(
        centres[keep],
        radius[keep],
        tuple(np.asarray(points.labels, dtype=object)[keep]) if len(points) else (),
        tuple(np.asarray(points.names, dtype=object)[keep]) if len(points) else (),
        None,
        "points",
        points.source,
    )


def objects_from_boxes(boxes: BoxSet, image: MedicalImage) -> ImageObjects:
    """Objects filling axis-aligned world boxes: the voxels whose centres lie in a box are its outline."""
    ndim = image.spatial_ndim
    if len(boxes) and boxes.low.shape[1] != ndim:
        raise MedlearnError(f"boxes have {boxes.low.shape[1]} coordinates, the image is {ndim}D", boxes.source)
    object_map = np.zeros(image.spatial_shape, dtype=np.int32)
    centres, radii = [], []
    shape = np.asarray(image.spatial_shape)
    for number, (low, high) in enumerate(zip(boxes.low, boxes.high, strict=True), start=1):
        corners = np.array([world_to_voxel(image, np.where(pick, high, low)) for pick in _corner_picks(ndim)])
        first = np.clip(np.ceil(corners.min(axis=0) - 1e-6).astype(int), 0, shape - 1)
        last = np.clip(np.floor(corners.max(axis=0) + 1e-6).astype(int), 0, shape - 1)
        if np.any(corners.max(axis=0) < -0.5) or np.any(corners.min(axis=0) > shape - 0.5):
            raise MedlearnError(f"box {number} lies outside the image (shape {tuple(shape)})", boxes.source)
        object_map[tuple(slice(a, b + 1) for a, b in zip(first, last, strict=True))] = number
        centres.append(corners.mean(axis=0))
        radii.append(float(np.prod(high - low) ** (1.0 / ndim)) / 2.0)
    if not centres:
        return _no_objects(image, "boxes", boxes.source)
    return ImageObjects(
        np.array(centres), np.array(radii), tuple(boxes.labels), ("",) * len(centres), object_map, "boxes", boxes.source
    )


def _first_of_duplicates(centres: np.ndarray, spacing, source: str) -> np.ndarray:
    """Indices of the points to keep: the first of each group of identical points (with a warning)."""
    keep: list[int] = []
    scale = np.asarray(spacing, dtype=np.float64)
    for index, centre in enumerate(centres):
        if any(np.linalg.norm((centres[k] - centre) * scale) <= DUPLICATE_TOLERANCE_MM for k in keep):
            continue
        keep.append(index)
    if len(keep) < len(centres):
        log.warning("%s: %d duplicate point(s) counted once", source, len(centres) - len(keep))
    return np.asarray(keep, dtype=int)


def _corner_picks(ndim: int) -> list[np.ndarray]:
    return [np.array([(corner >> axis) & 1 for axis in range(ndim)], dtype=bool) for corner in range(2**ndim)]


def _no_objects(image: MedicalImage, kind: str, source: str) -> ImageObjects:
    ndim = image.spatial_ndim
    return ImageObjects(np.zeros((0, ndim)), np.zeros(0), (), (), None, kind, source)
