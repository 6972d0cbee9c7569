"""Sliding windows: dense maps of images larger than a window, slice-wise 2D on volumes, flip TTA, and points found
window by window merged across overlaps."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medlearn.inference.sliding_window import Window, dense_probabilities, merge_points, points_by_window, window_starts


class Threshold(nn.Module):
    """Class 1 where the first channel is positive: a per-voxel model with a known answer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[:, :1]), 20 * x[:, :1]], dim=1)


class LeftBiased(nn.Module):
    """Depends on position within the window (not flip-equivariant), so TTA must change its output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-1, 1, x.shape[-1]).expand_as(x[:, :1])
        return torch.cat([torch.zeros_like(ramp), 5 * ramp + x[:, :1]], dim=1)


def test_image_larger_than_the_patch_is_segmented_everywhere():
    image = torch.randn(1, 50, 70, 30)
    probabilities = dense_probabilities(Threshold(), image, Window((16, 16, 16)))
    assert probabilities.shape == (2, 50, 70, 30)
    torch.testing.assert_close(probabilities.sum(0), torch.ones(50, 70, 30))
    assert torch.equal(probabilities.argmax(0), (image[0] > 0).long())


def test_slice_wise_2d_plan_on_a_volume_keeps_the_slice_axis_in_place():
    image = torch.randn(2, 40, 9, 33)
    probabilities = dense_probabilities(Threshold(), image, Window((16, 16), slice_axis=1))
    assert probabilities.shape == (2, 40, 9, 33)
    assert torch.equal(probabilities.argmax(0), (image[0] > 0).long())


def test_flip_tta_averages_the_flipped_predictions():
    image = torch.zeros(1, 32, 32)
    plain = dense_probabilities(LeftBiased(), image, Window((32, 32)))
    tta = dense_probabilities(LeftBiased(), image, Window((32, 32)), tta=True)
    assert plain[1, 0, 0] < 0.1 and plain[1, 0, -1] > 0.9
    # identity + vertical flip keep the bias; the horizontal flip cancels it: (2 * p + (1 - p)) / 3
    expected = (2 * plain[1, 0, 0] + plain[1, 0, -1]) / 3
    torch.testing.assert_close(tta[1, 0, 0], expected, atol=1e-4, rtol=0)


def _brightest_point(batch):
    """Per window: the brightest voxel as a point, scored by its value (a detector with a known answer)."""
    found = []
    for window in batch:
        flat = int(window[0].argmax())
        found.append((np.array([np.unravel_index(flat, window.shape[1:])], float), np.array([float(window[0].max())])))
    return found


def test_points_found_per_window_land_in_image_coordinates_once_each():
    image = torch.zeros(1, 70, 50)
    image[0, 60, 7] = 5.0  # near a corner: seen by several overlapping windows
    image[0, 20, 30] = 3.0
    points, scores = points_by_window(_brightest_point, image, Window((32, 32), overlap=0.5), merge_radius=2.0)
    found = {tuple(p) for p in points[scores > 1]}
    assert found == {(60.0, 7.0), (20.0, 30.0)}  # each once, in the image's coordinates
    assert scores[0] == 5.0  # best first


def test_windows_cover_the_image_and_end_at_its_edge():
    starts = window_starts((70, 20), Window((32, 32), overlap=0.5))
    assert {s[0] for s in starts} == {0, 13, 25, 38} and {s[1] for s in starts} == {0}
    assert max(s[0] for s in starts) + 32 == 70


def test_merging_keeps_the_best_of_close_points():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0]])
    kept, scores = merge_points(points, np.array([0.5, 0.9, 0.4]), radius=2.0)
    np.testing.assert_array_equal(kept, [[1.0, 0.0], [10.0, 10.0]])
    np.testing.assert_array_equal(scores, [0.9, 0.4])


def test_an_image_smaller_than_the_window_is_padded_with_the_fill_and_cropped_back():
    """The network sees the background level beyond the image (positive fill: class 1 there), and the map keeps
    the image's shape, also slice by slice."""
    seen = []

    class Recorder(Threshold):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.clone())
            return super().forward(x)

    image = -torch.ones(1, 5, 6, 7)
    probabilities = dense_probabilities(Recorder(), image, Window((8, 8, 8), fill=(0.25,)))
    assert probabilities.shape == (2, 5, 6, 7)
    assert torch.all(probabilities.argmax(0) == 0)
    window = seen[-1][0, 0]
    assert torch.all(window[5:] == 0.25) and torch.all(window[:5, :6, :7] == -1)
    slices = dense_probabilities(Recorder(), image, Window((8, 8), slice_axis=2, fill=(0.25,)))
    assert slices.shape == (2, 5, 6, 7) and torch.all(seen[-1][:, 0, 5:] == 0.25)


def test_without_a_fill_an_image_is_padded_with_its_own_minimum():
    seen = []

    class Recorder(Threshold):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.clone())
            return super().forward(x)

    image = torch.linspace(-2, 3, 5 * 6).reshape(1, 5, 6)
    dense_probabilities(Recorder(), image, Window((8, 8)))
    assert torch.all(seen[-1][0, 0, 5:] == -2)
