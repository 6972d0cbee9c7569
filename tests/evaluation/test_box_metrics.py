"""Box IoU, centroid and wall distances in millimetres, hand-computed, and the slice decoding of boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlearn.apps.localisation.boxes import boxes_from_probabilities, extent_of, slice_targets, volume_slices
from medlearn.errors import MedlearnError
from medlearn.evaluation.boxes import box_edges_mm, box_metrics, summarize_boxes


def test_box_metrics_in_millimetres_on_an_anisotropic_grid() -> None:
    spacing = (1.0, 1.0, 2.0)
    truth = np.array([0, 0, 0, 9, 9, 4.0])  # voxels 0-9 x 0-9 x 0-4: edges 10 x 10 x 10 mm
    shifted = np.array([5, 0, 0, 14, 9, 4.0])  # 5 mm further along x
    np.testing.assert_allclose(box_edges_mm(truth, spacing), [-0.5, -0.5, -1.0, 9.5, 9.5, 9.0])
    metrics = box_metrics(shifted, truth, spacing)
    assert metrics["iou"] == pytest.approx(500 / 1500)  # overlap 5x10x10 of a union 15x10x10
    assert metrics["centroid_mm"] == pytest.approx(5.0)
    assert metrics["wall_mm"] == pytest.approx(10 / 6)  # two x walls off by 5 mm, four walls exact
    thicker = np.array([0, 0, 0, 9, 9, 5.0])  # one more slice: the top wall 2 mm off
    assert box_metrics(thicker, truth, spacing)["wall_mm"] == pytest.approx(2 / 6)


def test_a_missed_box_counts_zero_iou_and_no_distance() -> None:
    metrics = box_metrics(None, np.array([0, 0, 3, 3.0]), (1.0, 1.0))
    assert metrics["iou"] == 0.0 and math.isnan(metrics["centroid_mm"]) and metrics["found"] == 0.0
    summary = summarize_boxes(
        [{"a": metrics}, {"a": box_metrics(np.array([0, 0, 3, 3.0]), np.array([0, 0, 3, 3.0]), (1.0, 1.0))}], ["a"]
    )
    assert summary["iou"] == pytest.approx(0.5) and summary["centroid_mm"] == pytest.approx(0.0)
    assert summary["found_share"] == 0.5 and summary["per_structure"]["a"]["boxes"] == 2


def test_a_box_of_the_wrong_dimension_is_refused() -> None:
    with pytest.raises(MedlearnError, match="3D box needs 6"):
        box_metrics(np.zeros(4), np.zeros(4), (1.0, 1.0, 1.0))


def test_extent_is_the_longest_confident_run_and_ignores_isolated_slices() -> None:
    probability = np.array([0.0, 0.9, 0.0, 0.0, 0.8, 0.9, 0.95, 0.9, 0.1, 0.0, 0.6, 0.7, 0.0])
    assert extent_of(probability) == (4.0, 7.0)  # the single slice 1 is removed by the 3-slice median
    assert extent_of(np.zeros(5)) is None


def test_slice_targets_mark_the_slices_inside_each_extent() -> None:
    boxes = [np.array([2, 0, 4, 9.0]), None]
    targets = slice_targets(boxes, axis=0, count=7, ndim=2)
    assert targets[:, 0].tolist() == [0, 0, 1, 1, 1, 0, 0] and targets[:, 1].sum() == 0


def test_boxes_come_from_the_three_axes_runs() -> None:
    probabilities = [np.zeros((10, 2)), np.zeros((12, 2)), np.zeros((8, 2))]
    for axis, (low, high) in enumerate(((2, 5), (3, 9), (1, 4))):
        probabilities[axis][low : high + 1, 0] = 1.0
    probabilities[0][:, 1] = 1.0  # structure 1 is found along one axis only: no box
    found = boxes_from_probabilities(probabilities)
    np.testing.assert_array_equal(found[0], [2, 3, 1, 5, 9, 4])
    assert found[1] is None


def test_volume_slices_are_square_and_keep_the_slice_order() -> None:
    volume = np.zeros((1, 4, 6, 3), np.float32)
    volume[0, 2] = 1.0
    slices = volume_slices(volume, axis=0, size=16)
    assert slices.shape == (4, 1, 16, 16)
    assert slices[2].sum() > 0 and slices[[0, 1, 3]].sum() == 0
