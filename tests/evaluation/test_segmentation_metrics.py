from __future__ import annotations

import math

import numpy as np
import pytest

from medlearn.errors import MedlearnError
from medlearn.evaluation.segmentation import case_outcome, segmentation_metrics


def _square(shape, top, left, size, label=1):
    image = np.zeros(shape, np.int64)
    image[top : top + size, left : left + size] = label
    return image


def test_overlap_of_shifted_squares_by_hand():
    truth = _square((40, 40), 10, 10, 10)
    prediction = _square((40, 40), 10, 12, 10)  # shifted 2 columns: 80 of 100 pixels overlap
    m = segmentation_metrics(prediction, truth, spacing=(1.0, 1.0), labels=[0, 1])[1]
    assert m["dice"] == pytest.approx(2 * 80 / 200)
    assert m["iou"] == pytest.approx(80 / 120)


def test_distances_are_in_millimetres():
    truth = _square((40, 40), 10, 10, 10)
    prediction = _square((40, 40), 10, 13, 10)  # 3 columns right
    in_voxels = segmentation_metrics(prediction, truth, spacing=(1.0, 1.0), labels=[1])[1]
    in_mm = segmentation_metrics(prediction, truth, spacing=(1.0, 2.5), labels=[1])[1]
    assert in_voxels["hd95_mm"] == pytest.approx(3.0)
    assert in_mm["hd95_mm"] == pytest.approx(7.5)  # columns are 2.5 mm apart
    assert 0 < in_mm["asd_mm"] <= in_mm["hd95_mm"]


def test_perfect_prediction_and_per_class_results():
    truth = _square((30, 30), 2, 2, 6, label=1) + _square((30, 30), 15, 15, 8, label=2)
    m = segmentation_metrics(truth, truth, spacing=(0.5, 0.5), labels=[0, 1, 2])
    assert set(m) == {1, 2}
    for label in (1, 2):
        assert m[label]["dice"] == pytest.approx(1.0)
        assert m[label]["hd95_mm"] == pytest.approx(0.0)


def test_missed_structure_and_absent_class():
    truth = _square((20, 20), 5, 5, 5, label=1)
    empty = np.zeros_like(truth)
    m = segmentation_metrics(empty, truth, spacing=(1.0, 1.0), labels=[1, 2])
    assert m[1]["dice"] == 0.0 and m[1]["iou"] == 0.0
    assert math.isinf(m[1]["hd95_mm"]) and math.isinf(m[1]["asd_mm"])
    assert all(math.isnan(v) for v in m[2].values())  # label 2 in neither: undefined, not perfect
    assert case_outcome(m, {1: True, 2: False}) == "missed"


def test_a_false_positive_on_an_empty_truth_counts_as_zero_not_as_undefined():
    truth = np.zeros((20, 20), np.int64)
    prediction = _square((20, 20), 5, 5, 5, label=1)
    m = segmentation_metrics(prediction, truth, spacing=(1.0, 1.0), labels=[0, 1])
    assert m[1]["dice"] == 0.0 and m[1]["iou"] == 0.0 and math.isinf(m[1]["hd95_mm"])
    assert case_outcome(m, {1: False}) == "false positive"
    both_empty = segmentation_metrics(truth, truth, spacing=(1.0, 1.0), labels=[1])
    assert math.isnan(both_empty[1]["dice"]) and case_outcome(both_empty, {1: False}) == "empty"


def test_real_lesion_mask_against_itself_shifted(shared_data):
    from medlearn.io import load

    mask = load(shared_data / "pyradiomics/brain1_label.nrrd")
    truth = (mask.array[0] > 0).astype(np.int64)
    shifted = np.roll(truth, 1, axis=2)  # one slice further: 6.5 mm
    m = segmentation_metrics(shifted, truth, spacing=mask.spacing, labels=[1])[1]
    assert 0 < m["dice"] < 1
    assert m["hd95_mm"] == pytest.approx(6.5, abs=0.01)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(MedlearnError, match="does not match"):
        segmentation_metrics(np.zeros((4, 4)), np.zeros((4, 5)), spacing=(1, 1), labels=[1])
