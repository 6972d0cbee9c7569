"""Whole-image segmentation by overlapping patches, with MONAI's Gaussian-weighted sliding window.

Patch predictions are weighted by a Gaussian (sigma = 1/8 of the patch, as nnU-Net) so that the
less reliable patch borders count less where windows overlap. Memory is bounded by the patch and the
window batch, not the image, so volumes far larger than a training patch are processed piece by piece;
only the class-probability map of the whole image is held (on the CPU).

A 2D plan on a volume (slice-by-slice segmentation of thick-slice data) runs the window over each
slice along the plan's ``slice_axis``, a few slices at a time. Test-time augmentation averages the
softmax of the identity and of a flip along each spatial axis (``d + 1`` passes rather than nnU-Net's
``2**d`` mirror combinations: most of the gain for a fraction of the cost on a CPU).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.inferers import sliding_window_inference
from torch import nn

from medlearn.planning.plan import SegmentationPlan

#: Slices of a volume segmented together by a 2D plan (bounds memory of the stacked batch).
SLICE_CHUNK = 16


def segment_probabilities(
    model: nn.Module,
    image: torch.Tensor,
    plan: SegmentationPlan,
    *,
    overlap: float = 0.5,
    tta: bool = False,
    window_batch: int | None = None,
) -> torch.Tensor:
    """Class probabilities ``(K, *spatial)`` (float32, CPU) of a prepared ``(C, *spatial)`` image."""
    spatial = image.ndim - 1
    window_batch = window_batch or max(1, plan.batch_size // 2)
    predictor = _softmax_predictor(model, plan, overlap, window_batch)
    if spatial == plan.spatial_dims:
        return _with_flips(predictor, image[None], plan.spatial_dims, tta)[0]
    if plan.slice_axis is None or spatial != plan.spatial_dims + 1:
        raise ValueError(f"a {plan.spatial_dims}D plan cannot segment a {spatial}D image")
    slices = image.movedim(plan.slice_axis + 1, 0)  # (S, C, a, b)
    chunks = [
        _with_flips(predictor, slices[start : start + SLICE_CHUNK], plan.spatial_dims, tta)
        for start in range(0, slices.shape[0], SLICE_CHUNK)
    ]
    return torch.cat(chunks).movedim(0, plan.slice_axis + 1)  # (K, ..., S at slice_axis, ...)


def _softmax_predictor(
    model: nn.Module, plan: SegmentationPlan, overlap: float, window_batch: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    def predict(batch: torch.Tensor) -> torch.Tensor:
        return sliding_window_inference(
            batch,
            roi_size=list(plan.patch_size),
            sw_batch_size=window_batch,
            predictor=lambda x: torch.softmax(model(x).float(), dim=1),
            overlap=overlap,
            mode="gaussian",
            sigma_scale=0.125,
            padding_mode="constant",
            device=torch.device("cpu"),
        )

    return predict


def _with_flips(
    predict: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, spatial_dims: int, tta: bool
) -> torch.Tensor:
    total = predict(batch).float().cpu()
    if not tta:
        return total
    for axis in range(2, 2 + spatial_dims):
        flipped = predict(torch.flip(batch, dims=(axis,)))
        total += torch.flip(flipped.float().cpu(), dims=(axis,))
    return total / (spatial_dims + 1)
