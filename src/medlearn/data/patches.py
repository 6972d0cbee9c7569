"""Random training patches of a :class:`~medlearn.data.cases.Case` with foreground oversampling, as nnU-Net
samples them.

A third of the patches (``foreground_fraction``) are centred on a voxel of a randomly chosen
foreground class present in the case, so that a lesion of a few hundred voxels in a 10-million-voxel
volume is seen every few batches instead of almost never; the rest are placed uniformly.

Each patch is a pure function of its index: the dataset is "virtual" (its length is huge) and the
loader's seeded ``RandomSampler`` draws indices, so the Trainer's per-epoch reseeding makes the
patches, their augmentation and a resumed run reproducible, with or without worker processes.
Augmentation samples its parameters first and then applies them deterministically, as TorchIO's random
transforms do: rotation and scaling while the patch is cut from the case (what turns into view is the
case's own tissue around the patch, as nnU-Net's spatial transform samples it), then mirroring, noise,
blur, brightness, contrast and gamma on the patch. Every named array of a case (images, label map,
points, boxes) goes through the same crop and spatial transform, so paired images and annotations stay aligned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import product
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from medlearn.data.cases import Case
from medlearn.errors import MedlearnError

#: Foreground voxel coordinates kept per class and case (bounded memory, as nnU-Net).
MAX_FOREGROUND_POINTS = 10_000
VIRTUAL_LENGTH = 2**31 - 1


@dataclass(frozen=True)
class PatchAugmentation:
    """Parameters of one patch's augmentation, sampled by :meth:`sample`, applied by :meth:`crop` (rotation,
    scaling) and :meth:`apply` (the rest); the default instance is the identity.

    The set and probabilities follow nnU-Net's defaults: rotation (p 0.2; in the plane of the first two
    axes, so thick-slice volumes are not warped across slices) and scaling (p 0.2, 0.7-1.4) about the patch
    centre, mirroring per axis, Gaussian noise (p 0.1), Gaussian blur (p 0.2), brightness (p 0.15),
    contrast (p 0.15) and gamma (p 0.3). On a handful of training cases a network otherwise memorises
    them (training loss near zero) and fires on unseen noise textures.
    """

    angle: float = 0.0
    zoom: float = 1.0
    flips: tuple[int, ...] = ()
    noise_std: float = 0.0
    blur_sigma: float = 0.0
    brightness: float = 1.0
    contrast: float = 1.0
    gamma: float = 1.0
    noise_seed: int = 0

    @classmethod
    def sample(cls, rng: np.random.Generator, spatial_dims: int, *, mirror: bool = True) -> PatchAugmentation:
        """Random parameters; ``mirror=False`` never flips (a mirrored image swaps left and right landmarks,
        which a landmark network must tell apart). The random draws are the same either way."""
        augmentation = cls(
            angle=float(rng.uniform(-np.pi, np.pi)) if rng.random() < 0.2 else 0.0,
            zoom=float(rng.uniform(0.7, 1.4)) if rng.random() < 0.2 else 1.0,
            flips=tuple(axis for axis in range(spatial_dims) if rng.random() < 0.5),
            noise_std=float(rng.uniform(0.0, 0.1)) if rng.random() < 0.1 else 0.0,
            blur_sigma=float(rng.uniform(0.5, 1.0)) if rng.random() < 0.2 else 0.0,
            brightness=float(rng.uniform(0.75, 1.25)) if rng.random() < 0.15 else 1.0,
            contrast=float(rng.uniform(0.75, 1.25)) if rng.random() < 0.15 else 1.0,
            gamma=float(rng.uniform(0.7, 1.5)) if rng.random() < 0.3 else 1.0,
            noise_seed=int(rng.integers(2**31)),
        )
        return augmentation if mirror else replace(augmentation, flips=())

    def crop(
        self, image: np.ndarray, labels: np.ndarray, start: Sequence[int], size: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The patch of ``size`` at ``start`` of a whole case (``image`` ``(C, *spatial)``, ``labels``
        ``(*spatial)``), rotated (first two axes) and scaled about its centre: linear for the image, nearest
        for the labels (see :meth:`crop_case`)."""
        patch = self.crop_case(Case(image=image, labels=labels), start, size)
        return patch.image, patch.labels

    def crop_case(self, case: Case, start: Sequence[int], size: Sequence[int]) -> Case:
        """The patch of ``size`` at ``start`` of a whole case, every named array cut and transformed alike.

        Rotating or zooming out brings in the tissue around the patch, read from the case, so image and
        labels stay true to each other and to the anatomy; only beyond the case's edge are both reflected.
        Warping the cut patch instead filled its corners with mirror images of itself (a mirrored cortex
        or nucleus at every rotated patch's border). Points and boxes move with the image; those that end up
        outside the patch are dropped (boxes: clipped to it).
        """
        start, size = np.asarray(start, dtype=int), np.asarray(size, dtype=int)
        matrix, centre = self._matrix(case.ndim), start + (size - 1) / 2.0
        if not self.angle and self.zoom == 1.0:
            window = tuple(slice(int(a), int(a + n)) for a, n in zip(start, size, strict=True))
            image_of = lambda array: array[(slice(None), *window)]  # noqa: E731
            label_of = lambda array: array[window]  # noqa: E731
        else:
            image_of = lambda array: self._warp(array, matrix, centre, size, order=1)  # noqa: E731
            label_of = lambda array: self._warp(array[None], matrix, centre, size, order=0)[0]  # noqa: E731
        to_patch = lambda points: (points - centre) @ np.linalg.inv(matrix).T + (size - 1) / 2.0  # noqa: E731
        points = radii = ids = None
        if case.points is not None:
            moved = to_patch(np.asarray(case.points, float).reshape(-1, case.ndim))
            keep = _inside(moved, size)
            points = moved[keep]
            if case.point_radii is not None:  # objects look ``zoom`` times larger in the patch
                radii = np.asarray(case.point_radii, float)[keep] * self.zoom
            if case.point_ids is not None:
                ids = np.asarray(case.point_ids)[keep]
        return case.with_arrays(
            image=image_of(case.image),
            labels=None if case.labels is None else label_of(case.labels),
            extra_images={key: image_of(array) for key, array in case.extra_images.items()},
            points=points,
            point_radii=radii,
            point_ids=ids,
            boxes=None if case.boxes is None else _boxes_in(case.boxes, to_patch, size),
        )

    def _matrix(self, ndim: int) -> np.ndarray:
        """Output -> input coordinates about the patch centre: rotation in the first two axes, then zoom
        (> 1 magnifies)."""
        matrix = np.eye(ndim)
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        matrix[:2, :2] = [[cos, -sin], [sin, cos]]
        return matrix / self.zoom

    @staticmethod
    def _warp(array: np.ndarray, matrix: np.ndarray, centre: np.ndarray, size: np.ndarray, order: int) -> np.ndarray:
        """``(C, *spatial)`` resampled onto the patch grid, reading only the patch's footprint in the case."""
        from scipy import ndimage

        half = (size - 1) / 2.0
        shape = array.shape[1:]
        reach = np.abs(matrix) @ half + 2  # half-extent of the patch's footprint in the case, plus interpolation
        low = np.clip(np.floor(centre - reach).astype(int), 0, shape)
        high = np.clip(np.ceil(centre + reach).astype(int) + 1, 0, shape)
        footprint = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
        offset = centre - low - matrix @ half
        out_shape = tuple(int(n) for n in size)
        return np.stack(
            [
                ndimage.affine_transform(
                    np.asarray(channel[footprint], np.float32 if order else channel.dtype),
                    matrix,
                    offset,
                    out_shape,
                    order=order,
                    mode="reflect",
                )
                for channel in array
            ]
        )

    def apply(self, image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mirroring and the intensity changes on a cut patch: ``image`` ``(C, *spatial)`` (normalised),
        ``labels`` ``(*spatial)``; labels only move with flips (see :meth:`apply_case`)."""
        patch = self.apply_case(Case(image=image, labels=labels))
        return patch.image, patch.labels

    def apply_case(self, case: Case) -> Case:
        """Mirroring of every array (points and boxes too), then the intensity changes of the images (each extra
        image with the same parameters, so a pair stays comparable)."""
        size = np.asarray(case.spatial_shape)
        flipped = case
        if self.flips:
            image_axes = tuple(axis + 1 for axis in self.flips)
            flipped = case.with_arrays(
                image=np.flip(case.image, axis=image_axes),
                labels=None if case.labels is None else np.flip(case.labels, axis=self.flips),
                extra_images={key: np.flip(array, axis=image_axes) for key, array in case.extra_images.items()},
                points=None if case.points is None else _flip_points(case.points, self.flips, size),
                boxes=None if case.boxes is None else _flip_boxes(case.boxes, self.flips, size),
            )
        return flipped.with_arrays(
            image=self._intensity(flipped.image),
            extra_images={key: self._intensity(array) for key, array in flipped.extra_images.items()},
        )

    def _intensity(self, image: np.ndarray) -> np.ndarray:
        """Noise, blur, brightness, contrast and gamma on ``(C, *spatial)``, as float32."""
        from scipy import ndimage

        image = np.array(image, dtype=np.float32)
        if self.noise_std:
            image += np.random.default_rng(self.noise_seed).normal(0.0, self.noise_std, image.shape).astype(np.float32)
        if self.blur_sigma:
            image = np.stack([ndimage.gaussian_filter(channel, self.blur_sigma) for channel in image])
        image *= np.float32(self.brightness)
        if self.contrast != 1.0:
            mean = image.mean(axis=tuple(range(1, image.ndim)), keepdims=True)
            image = (image - mean) * np.float32(self.contrast) + mean
        if self.gamma != 1.0:  # on the patch's own [0, 1] range, then back to its range (nnU-Net's gamma)
            low = image.min(axis=tuple(range(1, image.ndim)), keepdims=True)
            span = np.maximum(image.max(axis=tuple(range(1, image.ndim)), keepdims=True) - low, 1e-6)
            image = ((image - low) / span) ** np.float32(self.gamma) * span + low
        return image.astype(np.float32, copy=False)


def image_and_labels(patch: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """A segmentation batch item: the image and its label map as int64."""
    return torch.from_numpy(np.ascontiguousarray(patch.image)), torch.from_numpy(
        np.ascontiguousarray(patch.labels).astype(np.int64)
    )


class PatchDataset(Dataset):
    """Patches of ``patch_size`` from prepared cases. A patch with fewer axes than the cases (a 2D network on
    thick-slice volumes) is cut from one slice along ``slice_axis``. ``mirror=False`` never flips patches.
    ``to_tensors`` turns an augmented patch (a :class:`Case`) into the batch item the task expects (default:
    image and label map). ``fill`` pads cases smaller than a patch (per channel: the normalised background level;
    ``None``: each channel's minimum)."""

    def __init__(
        self,
        cases: Sequence[Case],
        patch_size: Sequence[int],
        *,
        slice_axis: int | None = None,
        foreground_fraction: float = 0.33,
        augment: bool = True,
        mirror: bool = True,
        seed: int = 0,
        to_tensors: Callable[[Case], Any] = image_and_labels,
        fill: Sequence[float] | None = None,
    ) -> None:
        if not cases:
            raise MedlearnError("no training cases")
        if foreground_fraction > 0 and any(case.labels is None for case in cases):
            raise MedlearnError("every training case needs a mask")
        self.patch_size = [int(n) for n in patch_size]
        self.slice_axis = slice_axis if cases[0].ndim > len(self.patch_size) else None
        if cases[0].ndim - (self.slice_axis is not None) != len(self.patch_size):
            raise MedlearnError(f"the patch is {len(self.patch_size)}D but the cases are {cases[0].ndim}D")
        self.cases = [case.pad_to(tuple(self._full_patch()), fill) for case in cases]
        self.foreground_fraction = foreground_fraction
        self.augment = augment
        self.mirror = mirror
        self.seed = seed
        self.to_tensors = to_tensors
        points_rng = np.random.default_rng(seed)
        self.foreground = [
            _foreground_points(case.labels, points_rng) if case.labels is not None else [] for case in self.cases
        ]

    def __len__(self) -> int:
        return VIRTUAL_LENGTH

    def __getitem__(self, index: int) -> Any:
        return self.to_tensors(self.patch(index))

    def patch(self, index: int) -> Case:
        """The augmented patch number ``index`` (a pure function of it and the seed)."""
        rng = np.random.default_rng([self.seed, int(index)])
        case_index = int(rng.integers(len(self.cases)))
        case, points = self.cases[case_index], self.foreground[case_index]
        centre = None
        if points and rng.random() < self.foreground_fraction:
            chosen = points[int(rng.integers(len(points)))]
            centre = chosen[int(rng.integers(len(chosen)))]
        region, start = self._region(case, centre, rng)
        augmentation = (
            PatchAugmentation.sample(rng, len(self.patch_size), mirror=self.mirror)
            if self.augment
            else PatchAugmentation()
        )
        return augmentation.apply_case(augmentation.crop_case(region, start, self.patch_size))

    # -- internals -----------------------------------------------------------------------------
    def _full_patch(self) -> list[int]:
        """The patch in the case's own axes (a 2D patch on a volume is one voxel thick along the slice axis)."""
        patch = list(self.patch_size)
        if self.slice_axis is not None:
            patch.insert(self.slice_axis, 1)
        return patch

    def _region(self, case: Case, centre: np.ndarray | None, rng: np.random.Generator) -> tuple[Case, np.ndarray]:
        """Where the patch lies: the case (or, for a 2D patch on a volume, the patch's slice) and the patch's
        start in it. Foreground patches are centred on ``centre``, others placed uniformly."""
        shape, patch = np.array(case.spatial_shape), np.array(self._full_patch())
        highest = shape - patch
        if centre is None:
            start = np.array([rng.integers(top + 1) for top in highest])
        else:
            start = np.clip(np.asarray(centre) - patch // 2, 0, highest)
        if self.slice_axis is not None:
            case = case.slice_along(self.slice_axis, int(start[self.slice_axis]))
            start = np.delete(start, self.slice_axis)
        return case, start


def _foreground_points(labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to ``MAX_FOREGROUND_POINTS`` voxel coordinates of each foreground class present."""
    points = []
    for value in np.unique(labels):
        if value == 0:
            continue
        where = np.argwhere(labels == value)
        if len(where) > MAX_FOREGROUND_POINTS:
            where = where[rng.choice(len(where), MAX_FOREGROUND_POINTS, replace=False)]
        points.append(where)
    return points


def _inside(points: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Which points lie within the patch (voxel centres 0 .. size - 1, half a voxel of slack)."""
    return np.all((points >= -0.5) & (points <= size - 0.5), axis=1)


def _boxes_in(boxes: np.ndarray, to_patch: Callable[[np.ndarray], np.ndarray], size: np.ndarray) -> np.ndarray:
    """Boxes ``(low..., high...)`` mapped corner by corner into the patch, clipped to it, empty ones dropped."""
    ndim = len(size)
    out = []
    for box in np.asarray(boxes, float):
        low, high = box[:ndim], box[ndim:]
        corners = np.array([np.where(pick, high, low) for pick in product((False, True), repeat=ndim)])
        moved = to_patch(corners)
        new_low, new_high = np.clip(moved.min(axis=0), 0, size - 1), np.clip(moved.max(axis=0), 0, size - 1)
        if np.all(new_high > new_low):
            out.append(np.concatenate([new_low, new_high]))
    return np.array(out, dtype=float).reshape(-1, 2 * ndim)


def _flip_points(points: np.ndarray, axes: Sequence[int], size: np.ndarray) -> np.ndarray:
    out = np.array(points, dtype=float)
    for axis in axes:
        out[:, axis] = size[axis] - 1 - out[:, axis]
    return out


def _flip_boxes(boxes: np.ndarray, axes: Sequence[int], size: np.ndarray) -> np.ndarray:
    out = np.array(boxes, dtype=float)
    ndim = len(size)
    for axis in axes:
        low, high = out[:, axis].copy(), out[:, axis + ndim].copy()
        out[:, axis], out[:, axis + ndim] = size[axis] - 1 - high, size[axis] - 1 - low
    return out


def patch_loader(
    dataset: Dataset, *, batch_size: int, batches_per_epoch: int, seed: int = 0, num_workers: int = 0
) -> DataLoader:
    """A loader drawing ``batches_per_epoch`` batches of random patch indices from a seeded sampler."""
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch_size * batches_per_epoch, generator=generator)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
