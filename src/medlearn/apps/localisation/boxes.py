"""3D bounding boxes of named structures: read from annotations, learned as slice labels, decoded from slice
probabilities (de Vos et al. 2016, METHODS.md loc-slices).

Annotations: a label mask (each non-zero value is a structure, named by its value; its box is the extent of its
voxels) or a boxes CSV (``label,x0,y0,z0,x1,y1,z1`` in world mm; the box covers the voxels whose centres lie in
it). Boxes are ``(low..., high...)`` voxel-centre extents on the image's grid.

Training sees every slice of every prepared volume along each of the three axes, padded to a square and resized to
``slice_size``; a slice's target says which structures' extents along that axis it falls in. At inference a
structure's extent along an axis is the longest run of slices its probability (median of three neighbours) keeps
at 0.5 or more; the box is the product of the three extents, mapped back to the image's own grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional
from torch.utils.data import Dataset

from medlearn.data.cases import Case
from medlearn.data.patches import VIRTUAL_LENGTH, PatchAugmentation
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.geometry import check_same_geometry, world_to_voxel
from medlearn.io.image import MedicalImage
from medlearn.io.markups import BoxSet, read_annotation_file
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import map_voxels, planned_affine, prepare_image

#: Slices are padded to a square and resized to this many pixels a side (``slice_size`` setting).
DEFAULT_SLICE_SIZE = 96
MARKUP_SUFFIXES = (".csv",)


@dataclass
class ImageBoxes:
    """An image as loaded, its structures' boxes (voxel extents on its grid) and, from a mask, the mask."""

    sample: Sample
    image: MedicalImage
    boxes: dict[str, np.ndarray]
    mask: np.ndarray | None = None

    def label_map(self, names: Sequence[str]) -> np.ndarray:
        """Structure ``k`` of ``names`` as value ``k + 1`` (the mask's voxels, or the filled box)."""
        out = np.zeros(self.image.spatial_shape, dtype=np.uint8)
        for index, name in enumerate(names):
            if name not in self.boxes:
                continue
            if self.mask is not None:
                out[np.rint(self.mask) == float(name)] = index + 1
            else:
                box = np.rint(self.boxes[name]).astype(int)
                ndim = len(box) // 2
                out[tuple(slice(box[a], box[a + ndim] + 1) for a in range(ndim))] = index + 1
        return out


def read_boxes(sample: Sample, image: MedicalImage | None = None) -> ImageBoxes:
    """The structures' boxes of ``sample`` (a mask or a boxes CSV)."""
    image = load(sample.path) if image is None else image
    if sample.target is None:
        raise MedlearnError("no box annotation for this image", sample.path)
    if str(sample.target).lower().endswith(MARKUP_SUFFIXES):
        markup = read_annotation_file(sample.target)
        if not isinstance(markup, BoxSet):
            raise MedlearnError("a box annotation must be a boxes CSV (label,x0,y0,z0,x1,y1,z1)", sample.target)
        return ImageBoxes(sample, image, _boxes_on_image(markup, image))
    mask = load(sample.target)
    check_same_geometry(image, mask)
    values = np.rint(mask.array[0])
    boxes = {}
    for value in np.unique(values):
        if value == 0:
            continue
        where = np.argwhere(values == value)
        boxes[str(int(value))] = np.concatenate([where.min(axis=0), where.max(axis=0)]).astype(np.float64)
    return ImageBoxes(sample, image, boxes, values)


def _boxes_on_image(markup: BoxSet, image: MedicalImage) -> dict[str, np.ndarray]:
    ndim = image.spatial_ndim
    if len(markup) and markup.low.shape[1] != ndim:
        raise MedlearnError(f"boxes have {markup.low.shape[1]} coordinates, the image is {ndim}D", markup.source)
    shape = np.asarray(image.spatial_shape)
    boxes: dict[str, np.ndarray] = {}
    for number, (low, high, label) in enumerate(zip(markup.low, markup.high, markup.labels, strict=True), start=1):
        name = label or f"box {number}"
        if name in boxes:
            raise MedlearnError(f"structure {name!r} has more than one box", markup.source)
        corners = np.array([world_to_voxel(image, np.where(_corner(c, ndim), high, low)) for c in range(2**ndim)])
        first, last = np.ceil(corners.min(axis=0) - 1e-6), np.floor(corners.max(axis=0) + 1e-6)
        if np.any(last < 0) or np.any(first > shape - 1) or np.any(last < first):
            raise MedlearnError(
                f"box {number} ({name}) holds no voxel of the image (shape {tuple(shape)})", markup.source
            )
        boxes[name] = np.concatenate([np.clip(first, 0, shape - 1), np.clip(last, 0, shape - 1)])
    return boxes


def _corner(index: int, ndim: int) -> np.ndarray:
    return np.array([(index >> axis) & 1 for axis in range(ndim)], dtype=bool)


def structure_names(items: Sequence[ImageBoxes], source) -> list[str]:
    """Every structure of the training set, ordered by name (numbers numerically)."""
    names = {name for item in items for name in item.boxes}
    if not names:
        raise MedlearnError("no training image has a box", source)
    return sorted(names, key=lambda name: (0, float(name), name) if _is_number(name) else (1, 0.0, name))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def box_on_grid(box: np.ndarray, source_affine: np.ndarray, target_affine: np.ndarray) -> np.ndarray:
    """A voxel-extent box mapped to another grid (its corners through world coordinates; the extent of the moved
    corners)."""
    ndim = len(box) // 2
    corners = np.array([np.where(_corner(c, ndim), box[ndim:], box[:ndim]) for c in range(2**ndim)])
    moved = map_voxels(corners, source_affine, target_affine)
    return np.concatenate([moved.min(axis=0), moved.max(axis=0)])


def volume_slices(array: np.ndarray, axis: int, size: int) -> torch.Tensor:
    """Every slice of ``array`` ``(C, *spatial)`` along spatial ``axis``, zero-padded to a square (centred) and
    resized to ``size`` (bilinear): ``(S, C, size, size)`` float32."""
    slices = torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(array, np.float32), axis + 1, 0)))
    height, width = slices.shape[-2:]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    padded = functional.pad(slices, (left, side - width - left, top, side - height - top))
    return functional.interpolate(padded, size=(size, size), mode="bilinear", align_corners=False)


def slice_targets(boxes: Sequence[np.ndarray | None], axis: int, count: int, ndim: int) -> np.ndarray:
    """``(count, K)`` float32: 1 where slice ``s`` along ``axis`` lies within structure ``k``'s extent."""
    index = np.arange(count)[:, None]
    low = np.array([np.nan if box is None else box[axis] for box in boxes])[None]
    high = np.array([np.nan if box is None else box[axis + ndim] for box in boxes])[None]
    return ((index >= low - 0.5) & (index <= high + 0.5)).astype(np.float32)


def extent_of(probability: np.ndarray, threshold: float = 0.5) -> tuple[float, float] | None:
    """The longest run (by summed probability) of slices at or above ``threshold`` after a 3-slice median, as
    ``(first, last)`` slice indices; None when no slice reaches it."""
    smooth = ndimage.median_filter(np.asarray(probability, dtype=float), size=3, mode="nearest")
    runs, count = ndimage.label(smooth >= threshold)
    if not count:
        return None
    weights = ndimage.sum_labels(smooth, runs, np.arange(1, count + 1))
    best = int(np.argmax(weights)) + 1
    where = np.flatnonzero(runs == best)
    return float(where[0]), float(where[-1])


@dataclass
class BoxCase:
    """A prepared volume's slices along each axis with their targets, and its boxes on the prepared grid."""

    name: str
    slices: list[torch.Tensor]  # per axis (S_a, C, size, size)
    targets: list[np.ndarray]  # per axis (S_a, K)
    boxes: list[np.ndarray | None]  # per structure, prepared-grid extents (None: not annotated)


def prepare_box_case(item: ImageBoxes, names: Sequence[str], plan: SegmentationPlan, size: int) -> BoxCase:
    array = prepare_image(item.image, plan)
    affine = planned_affine(item.image, plan)
    boxes = [box_on_grid(item.boxes[name], item.image.affine, affine) if name in item.boxes else None for name in names]
    ndim = array.ndim - 1
    slices = [volume_slices(array, axis, size) for axis in range(ndim)]
    targets = [slice_targets(boxes, axis, array.shape[axis + 1], ndim) for axis in range(ndim)]
    return BoxCase(item.sample.path.name, slices, targets, boxes)


def boxes_from_probabilities(probabilities: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """Per-axis slice probabilities ``[(S_a, K), ...]`` -> per structure a box (prepared-grid voxel extents) or
    None when some axis has no run."""
    structures = probabilities[0].shape[1]
    ndim = len(probabilities)
    boxes: list[np.ndarray | None] = []
    for k in range(structures):
        extents = [extent_of(axis_probabilities[:, k]) for axis_probabilities in probabilities]
        if any(extent is None for extent in extents):
            boxes.append(None)
            continue
        boxes.append(np.array([e[0] for e in extents] + [e[1] for e in extents], dtype=np.float64))
    assert all(box is None or len(box) == 2 * ndim for box in boxes)
    return boxes


class SliceDataset(Dataset):
    """Every slice of the training volumes along each axis, with its targets and axis; augmented (no mirroring:
    left and right structures stay apart) by :class:`~medlearn.data.patches.PatchAugmentation`. Like
    :class:`~medlearn.data.patches.PatchDataset` it is virtual: index ``i`` is slice ``i mod n`` with an
    augmentation drawn from ``i``, so a seeded sampler gives new augmentations every epoch, reproducibly."""

    def __init__(self, cases: Sequence[BoxCase], *, augment: bool = True, seed: int = 0) -> None:
        self.items = [
            (case_index, axis, s)
            for case_index, case in enumerate(cases)
            for axis in range(len(case.slices))
            for s in range(case.slices[axis].shape[0])
        ]
        if not self.items:
            raise MedlearnError("no training slices")
        self.cases = cases
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return VIRTUAL_LENGTH

    @property
    def slices(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        case_index, axis, s = self.items[index % len(self.items)]
        case = self.cases[case_index]
        image = case.slices[axis][s].numpy()
        if self.augment:
            rng = np.random.default_rng([self.seed, int(index)])
            augmentation = PatchAugmentation.sample(rng, 2, mirror=False)
            patch = augmentation.crop_case(Case(image=image), (0, 0), image.shape[1:])
            image = augmentation.apply_case(patch).image
        return (
            torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            torch.from_numpy(case.targets[axis][s]),
            torch.tensor(axis),
        )
