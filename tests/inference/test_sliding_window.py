"""Sliding-window segmentation: whole images larger than a patch, slice-wise 2D on volumes, flip TTA."""

from __future__ import annotations

import torch
from torch import nn

from medlearn.inference.sliding_window import segment_probabilities
from medlearn.planning.plan import SegmentationPlan


class Threshold(nn.Module):
    """Class 1 where the first channel is positive: a per-voxel model with a known answer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[:, :1]), 20 * x[:, :1]], dim=1)


class LeftBiased(nn.Module):
    """Depends on position within the window (not flip-equivariant), so TTA must change its output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-1, 1, x.shape[-1]).expand_as(x[:, :1])
        return torch.cat([torch.zeros_like(ramp), 5 * ramp + x[:, :1]], dim=1)


def _plan(dims: int, patch, slice_axis=None) -> SegmentationPlan:
    return SegmentationPlan(
        spatial_dims=dims,
        target_spacing=[1.0] * 3,
        patch_size=list(patch),
        batch_size=4,
        depth=1,
        normalization="zscore",
        labels=[0, 1],
        slice_axis=slice_axis,
    )


def test_image_larger_than_the_patch_is_segmented_everywhere():
    image = torch.randn(1, 50, 70, 30)
    probabilities = segment_probabilities(Threshold(), image, _plan(3, [16, 16, 16]))
    assert probabilities.shape == (2, 50, 70, 30)
    torch.testing.assert_close(probabilities.sum(0), torch.ones(50, 70, 30))
    assert torch.equal(probabilities.argmax(0), (image[0] > 0).long())


def test_slice_wise_2d_plan_on_a_volume_keeps_the_slice_axis_in_place():
    image = torch.randn(2, 40, 9, 33)
    probabilities = segment_probabilities(Threshold(), image, _plan(2, [16, 16], slice_axis=1))
    assert probabilities.shape == (2, 40, 9, 33)
    assert torch.equal(probabilities.argmax(0), (image[0] > 0).long())


def test_flip_tta_averages_the_flipped_predictions():
    image = torch.zeros(1, 32, 32)
    plain = segment_probabilities(LeftBiased(), image, _plan(2, [32, 32]))
    tta = segment_probabilities(LeftBiased(), image, _plan(2, [32, 32]), tta=True)
    assert plain[1, 0, 0] < 0.1 and plain[1, 0, -1] > 0.9
    # identity + vertical flip keep the bias; the horizontal flip cancels it: (2 * p + (1 - p)) / 3
    expected = (2 * plain[1, 0, 0] + plain[1, 0, -1]) / 3
    torch.testing.assert_close(tta[1, 0, 0], expected, atol=1e-4, rtol=0)
