"""From a dataset fingerprint to a segmentation plan, with nnU-Net's rules adapted to a CPU budget.

- target spacing: the median spacing; on strongly anisotropic data (ratio > 3) the coarse axis takes
  the 10th percentile of its spacings, as nnU-Net does, so thin-slice cases are not thrown away;
- 2D or 3D: 2D images -> 2D; volumes whose slices are more than 3x thicker than their in-plane
  spacing are segmented slice by slice (2D), other volumes in 3D;
- patch: the median resampled shape, shrunk along its longest axis until it fits the voxel budget
  (2D 256x256, 3D 64^3 on a CPU), each side a multiple of 2**depth;
- depth: down-sampling stages until the smallest patch side reaches 8 (at most 5);
- width (``base_channels``, first-stage channels of a U-Net): 32 in 2D as in nnU-Net (nuclei split: test Dice
  0.940 vs 0.936 for 16 in the same 2 minutes), 16 in 3D, where 32 costs 3x per epoch and lost 0.08 Dice on
  MNI152 at a 3-minute CPU budget (60 epochs instead of 191);
- batch: as many 2D patches as fit 2**20 pixels (4-32), but covering at most 5% of the training voxels
  (nnU-Net's cap: on a small dataset many small steps generalise better than a few large ones; on the
  nuclei split, 10 tiles of 128x128, batch 32 -> 4 raised test Dice from 0.92 to 0.94); 2 for 3D;
- normalisation: chosen from the cases' intensities and foreground shares, with its reason
  (:mod:`medlearn.planning.normalization`): CT's fixed HU clip + z-score, one fixed clip + z-score learned
  on the training cases when they share a scale or their foreground share varies a lot, per-image z-score
  only when the scales differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.inference.sliding_window import Window
from medlearn.io.intensity import background_values
from medlearn.planning.fingerprint import DatasetFingerprint
from medlearn.planning.normalization import check_scheme, choose_normalization

ANISOTROPY_RATIO = 3.0
VOXEL_BUDGET = {2: 256 * 256, 3: 64**3}
MAX_DEPTH = 5
MIN_BOTTLENECK = 8
#: A 2D batch covers at most this share of the training voxels (nnU-Net's rule) ...
BATCH_DATASET_SHARE = 0.05
#: ... but holds at least this many patches (2 was less stable than 4 on the nuclei split: test Dice 0.92 vs 0.94).
MIN_BATCH_2D = 4


@dataclass
class SegmentationPlan:
    spatial_dims: int
    target_spacing: list[float]
    patch_size: list[int]
    batch_size: int
    depth: int
    normalization: str
    normalization_params: dict = field(default_factory=dict)
    labels: list[int] = field(default_factory=list)
    median_shape: list[int] = field(default_factory=list)
    slice_axis: int | None = None
    #: Image channels (co-registered modalities, RGB): the network's input channels.
    channels: int = 1
    #: First-stage channels of models that take ``base_channels`` (16: what runs planned before it existed used).
    base_channels: int = 16
    #: Volumes are brought to their closest RAS+ orientation before anything else (False: plans made before
    #: medlearn reoriented, used as their cases are stored).
    canonical: bool = False
    #: Why the fingerprint chose ``normalization`` (shown with the plan and in the report).
    normalization_reason: str = ""
    #: A caveat of that choice, if any.
    normalization_warning: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def padding_values(self) -> tuple[float, ...] | None:
        """Per channel, the normalised background level that pads images smaller than a patch (training and
        inference alike); ``None``: each image's own minimum."""
        return background_values(self.normalization, self.normalization_params, self.channels)

    def window(self, overlap: float) -> Window:
        """How inference slides the network over a prepared image: the plan's patch, half its batch per pass,
        padded with the background level."""
        return Window(self.patch_size, overlap, max(1, self.batch_size // 2), self.slice_axis, self.padding_values)

    def with_overrides(self, overrides: dict) -> SegmentationPlan:
        """A copy with user overrides (CLI ``--set key=value`` or config), checked for unknown keys. A changed
        ``normalization`` needs parameters learned from the data: :func:`make_plan` applies that one."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise MedlearnError(f"unknown plan settings {unknown}; known: {sorted(known)}")
        if "normalization" in overrides and "normalization_params" not in overrides:
            check_scheme(overrides["normalization"])
            if overrides["normalization"] != self.normalization:
                raise MedlearnError("a changed normalization needs its parameters: plan with make_plan(fp, overrides)")
        plan = replace(self, **overrides)
        if len(plan.patch_size) != plan.spatial_dims:
            raise MedlearnError(f"patch_size {plan.patch_size} does not have {plan.spatial_dims} sides")
        if any(side % 2**plan.depth for side in plan.patch_size):
            raise MedlearnError(f"each patch side must be a multiple of 2**depth = {2**plan.depth}")
        return plan


def make_plan(fp: DatasetFingerprint, overrides: dict | None = None) -> SegmentationPlan:
    """The plan for a dataset, with the user's ``overrides`` (``--set``) applied and checked."""
    overrides = dict(overrides or {})
    spacings, shapes = fp.spacings, fp.shapes
    target = np.median(spacings, axis=0)
    coarse = int(np.argmax(target))
    anisotropic = fp.spatial_dims == 3 and target[coarse] > ANISOTROPY_RATIO * np.min(target)
    if anisotropic:
        target[coarse] = np.percentile(spacings[:, coarse], 10)
    resampled = np.median(shapes * spacings / target, axis=0)
    if anisotropic:  # slice by slice: the network sees the two fine axes
        network_dims, slice_axis = 2, coarse
        in_plane = [axis for axis in range(3) if axis != coarse]
        patch_source, patch_spacing = resampled[in_plane], target[in_plane]
    else:
        network_dims, slice_axis = fp.spatial_dims, None
        patch_source, patch_spacing = resampled, target
    patch, depth = _patch_and_depth(patch_source, patch_spacing, VOXEL_BUDGET[network_dims])
    dataset_voxels = float(np.sum(np.prod(shapes * spacings / target, axis=1)))
    batch = _batch_size_2d(patch, dataset_voxels) if network_dims == 2 else 2
    forced = overrides.pop("normalization", None)
    normalization = choose_normalization(
        fp.intensities(),
        fp.dataset_scale,
        fp.foreground_intensity,
        forced=check_scheme(forced) if forced is not None else None,
        nonzero_scale=fp.nonzero_scale,
    )
    plan = SegmentationPlan(
        spatial_dims=network_dims,
        target_spacing=[float(s) for s in target],
        patch_size=patch,
        batch_size=batch,
        depth=depth,
        normalization=normalization.scheme,
        normalization_params=normalization.params,
        labels=list(fp.labels),
        median_shape=[int(round(s)) for s in resampled],
        slice_axis=slice_axis,
        channels=fp.channels,
        base_channels=32 if network_dims == 2 else 16,
        canonical=fp.spatial_dims == 3,
        normalization_reason=normalization.reason,
        normalization_warning=normalization.warning,
    )
    return plan.with_overrides(overrides)


def _batch_size_2d(patch: list[int], dataset_voxels: float) -> int:
    """Patches per 2D batch: what fits 2**20 pixels, capped at a share of the dataset, within 4-32."""
    patch_voxels = math.prod(patch)
    by_memory = 2**20 // patch_voxels
    by_dataset = int(BATCH_DATASET_SHARE * dataset_voxels // patch_voxels)
    return int(np.clip(min(by_memory, by_dataset), MIN_BATCH_2D, 32))


def _patch_and_depth(shape: np.ndarray, spacing: np.ndarray, budget: int) -> tuple[list[int], int]:
    """Shrink the largest physical side until the patch fits ``budget``, then round to 2**depth."""
    patch = np.maximum(np.asarray(shape, dtype=float), 1.0)
    while np.prod(patch) > budget:
        axis = int(np.argmax(patch * spacing))
        patch[axis] *= 0.9
    depth = int(np.clip(math.floor(math.log2(max(patch.min(), 1) / MIN_BOTTLENECK)), 1, MAX_DEPTH))
    step = 2**depth
    sides = [max(step, int(side // step) * step) for side in patch]
    return sides, depth
