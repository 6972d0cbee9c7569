"""Random training patches with foreground oversampling, as nnU-Net samples them.

A third of the patches (``foreground_fraction``) are centred on a voxel of a randomly chosen
foreground class present in the case, so that a lesion of a few hundred voxels in a 10-million-voxel
volume is seen every few batches instead of almost never; the rest are placed uniformly.

Each patch is a pure function of its index: the dataset is "virtual" (its length is huge) and the
loader's seeded ``RandomSampler`` draws indices, so the Trainer's per-epoch reseeding makes the
patches, their augmentation and a resumed run reproducible, with or without worker processes.
Augmentation samples its parameters first and then applies them deterministically, as TorchIO's random
transforms do: rotation and scaling while the patch is cut from the case (what turns into view is the
case's own tissue around the patch, as nnU-Net's spatial transform samples it), then mirroring, noise,
blur, brightness, contrast and gamma on the patch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from medlearn.apps.segmentation.cases import SegmentationCase
from medlearn.errors import MedlearnError
from medlearn.planning.plan import SegmentationPlan

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
    def sample(cls, rng: np.random.Generator, spatial_dims: int) -> PatchAugmentation:
        return cls(
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

    def crop(
        self, image: np.ndarray, labels: np.ndarray, start: Sequence[int], size: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The patch of ``size`` at ``start`` of a whole case (``image`` ``(C, *spatial)``, ``labels``
        ``(*spatial)``), rotated (first two axes) and scaled about its centre: linear for the image, nearest
        for the labels.

        Rotating or zooming out brings in the tissue around the patch, read from the case, so image and
        labels stay true to each other and to the anatomy; only beyond the case's edge are both reflected.
        Warping the cut patch instead filled its corners with mirror images of itself (a mirrored cortex
        or nucleus at every rotated patch's border).
        """
        from scipy import ndimage

        start, size = np.asarray(start, dtype=int), np.asarray(size, dtype=int)
        if not self.angle and self.zoom == 1.0:
            window = tuple(slice(int(a), int(a + n)) for a, n in zip(start, size, strict=True))
            return image[(slice(None), *window)], labels[window]
        ndim = labels.ndim
        matrix = np.eye(ndim)
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        matrix[:2, :2] = [[cos, -sin], [sin, cos]]
        matrix /= self.zoom  # output -> input coordinates: zoom > 1 magnifies
        half = (size - 1) / 2.0
        centre = start + half
        reach = np.abs(matrix) @ half + 2  # half-extent of the patch's footprint in the case, plus interpolation
        low = np.clip(np.floor(centre - reach).astype(int), 0, labels.shape)
        high = np.clip(np.ceil(centre + reach).astype(int) + 1, 0, labels.shape)
        footprint = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
        offset = centre - low - matrix @ half
        shape = tuple(int(n) for n in size)
        warped = np.stack(
            [
                ndimage.affine_transform(
                    np.asarray(channel[footprint], np.float32), matrix, offset, shape, order=1, mode="reflect"
                )
                for channel in image
            ]
        )
        warped_labels = ndimage.affine_transform(
            np.asarray(labels[footprint]), matrix, offset, shape, order=0, mode="reflect"
        )
        return warped, warped_labels

    def apply(self, image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mirroring and the intensity changes on a cut patch: ``image`` ``(C, *spatial)`` (normalised),
        ``labels`` ``(*spatial)``; labels only move with flips."""
        from scipy import ndimage

        if self.flips:
            image = np.flip(image, axis=tuple(axis + 1 for axis in self.flips))
            labels = np.flip(labels, axis=self.flips)
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
        return image.astype(np.float32, copy=False), labels


class PatchDataset(Dataset):
    """Patches of ``plan.patch_size`` from prepared cases; 2D plans on volumes take in-plane patches of one slice."""

    def __init__(
        self,
        cases: Sequence[SegmentationCase],
        plan: SegmentationPlan,
        *,
        foreground_fraction: float = 0.33,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        if not cases:
            raise MedlearnError("no training cases")
        if any(case.labels is None for case in cases):
            raise MedlearnError("every training case needs a mask")
        self.plan = plan
        self.slice_axis = plan.slice_axis if len(cases[0].spatial_shape) > plan.spatial_dims else None
        if len(cases[0].spatial_shape) - (self.slice_axis is not None) != plan.spatial_dims:
            raise MedlearnError(f"the plan is {plan.spatial_dims}D but the cases are {len(cases[0].spatial_shape)}D")
        self.cases = [self._padded(case) for case in cases]
        self.foreground_fraction = foreground_fraction
        self.augment = augment
        self.seed = seed
        points_rng = np.random.default_rng(seed)
        self.foreground = [_foreground_points(case.labels, points_rng) for case in self.cases]

    def __len__(self) -> int:
        return VIRTUAL_LENGTH

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        case_index = int(rng.integers(len(self.cases)))
        case, points = self.cases[case_index], self.foreground[case_index]
        centre = None
        if points and rng.random() < self.foreground_fraction:
            chosen = points[int(rng.integers(len(points)))]
            centre = chosen[int(rng.integers(len(chosen)))]
        image, labels, start = self._region(case, centre, rng)
        augmentation = PatchAugmentation.sample(rng, self.plan.spatial_dims) if self.augment else PatchAugmentation()
        image, labels = augmentation.apply(*augmentation.crop(image, labels, start, self.plan.patch_size))
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(
            np.ascontiguousarray(labels).astype(np.int64)
        )

    # -- internals -----------------------------------------------------------------------------
    def _full_patch(self) -> list[int]:
        """The patch in the case's own axes (a 2D patch on a volume is one voxel thick along the slice axis)."""
        patch = list(self.plan.patch_size)
        if self.slice_axis is not None:
            patch.insert(self.slice_axis, 1)
        return patch

    def _padded(self, case: SegmentationCase) -> SegmentationCase:
        """Cases smaller than the patch are padded (image with 0 = the normalised mean, labels with background)."""
        shape, patch = case.spatial_shape, self._full_patch()
        pads = [(0, max(0, p - n)) for n, p in zip(shape, patch, strict=True)]
        if not any(after for _, after in pads):
            return case
        image = np.pad(case.image, [(0, 0), *pads])
        labels = np.pad(case.labels, pads)
        return SegmentationCase(image=image, labels=labels, name=case.name, sample=case.sample)

    def _region(
        self, case: SegmentationCase, centre: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the patch lies: the case (or, for a 2D plan on a volume, the patch's slice) and the patch's
        start in it. Foreground patches are centred on ``centre``, others placed uniformly."""
        shape, patch = np.array(case.spatial_shape), np.array(self._full_patch())
        highest = shape - patch
        if centre is None:
            start = np.array([rng.integers(top + 1) for top in highest])
        else:
            start = np.clip(np.asarray(centre) - patch // 2, 0, highest)
        image, labels = case.image, case.labels
        if self.slice_axis is not None:
            index = int(start[self.slice_axis])
            image = np.take(image, index, axis=self.slice_axis + 1)
            labels = np.take(labels, index, axis=self.slice_axis)
            start = np.delete(start, self.slice_axis)
        return image, labels, start


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


def patch_loader(
    dataset: PatchDataset, *, batch_size: int, batches_per_epoch: int, seed: int = 0, num_workers: int = 0
) -> DataLoader:
    """A loader drawing ``batches_per_epoch`` batches of random patch indices from a seeded sampler."""
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch_size * batches_per_epoch, generator=generator)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
