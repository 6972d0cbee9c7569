"""Detection metrics: hit rules, FROC and CPM against hand-computed and published LUNA16 values, AP, bootstrap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from monai.metrics import compute_froc_score

from medlearn.errors import MedlearnError
from medlearn.evaluation.detection import (
    FROC,
    LUNA16_FP_RATES,
    ImageMatch,
    Targets,
    average_precision,
    competition_performance_metric,
    froc_curve,
    match_detections,
    sensitivities_at,
    summarize_detection,
)

ISO = (1.0, 1.0)


def _none(spacing: tuple[float, ...] = ISO) -> Targets:
    return Targets(np.zeros((0, len(spacing))), np.zeros(0), spacing)


def _hand_example() -> list[ImageMatch]:
    """Three images, three targets, seven detections.

    image a: targets (10, 10) and (30, 30), radius 3 mm. Detections (10, 11) 0.9 -> target 0; (10, 9) 0.5 -> target 0
             again, ignored; (50, 50) 0.8 -> false positive; (30, 31) 0.3 -> target 1.
    image b: target (20, 20), radius 2 mm. Detections (20, 20) 0.7 -> hit; (5, 5) 0.6 -> false positive.
    image c: no target. Detection (8, 8) 0.4 -> false positive.
    """
    a = Targets(np.array([[10, 10], [30, 30]]), np.array([3.0, 3.0]), ISO)
    b = Targets(np.array([[20, 20]]), np.array([2.0]), ISO)
    return [
        match_detections(np.array([[10, 11], [10, 9], [50, 50], [30, 31]]), np.array([0.9, 0.5, 0.8, 0.3]), a, "a"),
        match_detections(np.array([[20, 20], [5, 5]]), np.array([0.7, 0.6]), b, "b"),
        match_detections(np.array([[8, 8]]), np.array([0.4]), _none(), "c"),
    ]


def test_hand_computed_froc_cpm_and_ap():
    matches = _hand_example()
    assert [m.ignored for m in matches] == [1, 0, 0]
    # Hits score 0.9, 0.3, 0.7 (3 targets); false positives 0.8, 0.6, 0.4 (3 images).
    # threshold 0.9: 1 TP, 0 FP -> sensitivity 1/3, 0 FP/image
    #           0.8: 1 TP, 1 FP -> 1/3, 1/3
    #           0.7: 2 TP, 1 FP -> 2/3, 1/3
    #           0.6: 2 TP, 2 FP -> 2/3, 2/3
    #           0.4: 2 TP, 3 FP -> 2/3, 1
    #           0.3: 3 TP, 3 FP -> 1,   1    (the lowest threshold: every detection kept)
    froc = froc_curve(matches)
    np.testing.assert_allclose(froc.thresholds, [0.9, 0.8, 0.7, 0.6, 0.4, 0.3])
    np.testing.assert_allclose(froc.fp_per_image, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(froc.sensitivity, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1])
    # Linear interpolation between consecutive operating points:
    # 1/8 and 1/4 lie between (0, 1/3) and (1/3, 1/3) -> 1/3; 1/2 between (1/3, 2/3) and (2/3, 2/3) -> 2/3;
    # 1 FP/image is the last point (1, 1) -> 1; 2, 4, 8 are beyond the curve -> its last sensitivity, 1.
    # CPM = (1/3 + 1/3 + 2/3 + 1 + 1 + 1 + 1) / 7 = (16/3) / 7 = 16/21.
    np.testing.assert_allclose(sensitivities_at(froc), [1 / 3, 1 / 3, 2 / 3, 1, 1, 1, 1])
    assert competition_performance_metric(froc) == pytest.approx(16 / 21)
    # Ranked: 0.9 TP, 0.8 FP, 0.7 TP, 0.6 FP, 0.4 FP, 0.3 TP. Recall steps of 1/3 at precision 1/1, 2/3 and 3/6:
    # AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 1/2 = 6/18 + 4/18 + 3/18 = 13/18.
    assert average_precision(matches) == pytest.approx(13 / 18)


def test_every_target_hit_keeps_the_lowest_threshold():
    # One target found at the lowest score: MONAI's curve function drops that threshold, ours must not.
    targets = Targets(np.array([[5.0, 5.0]]), np.array([2.0]), ISO)
    match = match_detections(np.array([[0, 0], [5, 5]]), np.array([0.9, 0.2]), targets)
    froc = froc_curve([match])
    np.testing.assert_allclose(froc.sensitivity, [0, 1])
    np.testing.assert_allclose(froc.fp_per_image, [1, 1])
    assert sensitivities_at(froc, (1.0, 8.0)) == [1.0, 1.0]


# Published LUNA16 FROCs (sensitivity at 1/8 ... 8 FP per scan) and their CPMs.
NNDETECTION = ((0.812, 0.885, 0.927, 0.950, 0.969, 0.979, 0.985), 0.930)
MONAI_RETINANET = ((0.835, 0.885, 0.931, 0.957, 0.974, 0.983, 0.988), 0.936)


@pytest.mark.parametrize(("published", "cpm"), [NNDETECTION, MONAI_RETINANET])
def test_published_luna16_cpm(published, cpm):
    froc = FROC(np.array(LUNA16_FP_RATES), np.array(published), np.linspace(0.9, 0.3, 7))
    assert sensitivities_at(froc) == pytest.approx(list(published))
    assert round(competition_performance_metric(froc), 3) == cpm
    # MONAI expects false positives per image descending and reverses them; fed our ascending curve as it is,
    # np.interp would read garbage, which is why the curve goes in reversed.
    wrong = float(compute_froc_score(froc.fp_per_image, froc.sensitivity, LUNA16_FP_RATES))
    assert round(wrong, 3) != cpm


def test_rates_outside_the_curve_take_its_ends():
    froc = FROC(np.array([0.5, 1.0, 2.0]), np.array([0.4, 0.6, 0.8]), np.array([0.9, 0.5, 0.1]))
    assert sensitivities_at(froc, (0.125, 1.5, 8.0)) == pytest.approx([0.4, 0.7, 0.8])


def test_inside_the_instance_map_but_outside_the_radius_is_a_hit():
    instance_map = np.zeros((20, 20), int)
    instance_map[3:8, 3:16] = 1
    targets = Targets(np.array([[5.0, 5.0]]), np.array([1.0]), ISO, instance_map)
    match = match_detections(np.array([[5.0, 12.4], [12.0, 12.0]]), np.array([0.8, 0.7]), targets)
    assert match.target_scores.tolist() == [0.8]
    assert match.target_distance_mm[0] == pytest.approx(7.4)
    assert match.false_positive_scores.tolist() == [0.7]
    # fractional coordinates are rounded, then clipped to the grid
    edge = np.zeros((4, 4), int)
    edge[3, 0] = 1
    corner = Targets(np.array([[3.0, 0.0]]), np.array([0.0]), ISO, edge)
    assert match_detections(np.array([[3.6, -0.4]]), np.array([0.5]), corner).target_scores.tolist() == [0.5]


def test_within_the_radius_without_a_map_in_millimetres():
    targets = Targets(np.array([[10.0, 10.0]]), np.array([3.0]), (2.0, 1.0))
    # 1 voxel along axis 0 = 2 mm (hit); 2 voxels = 4 mm (miss); 3 voxels along axis 1 = 3 mm (hit, on the radius)
    match = match_detections(np.array([[12.0, 10.0], [11.0, 10.0], [10.0, 13.0]]), np.array([0.9, 0.5, 0.4]), targets)
    assert match.target_scores.tolist() == [0.5]
    assert match.target_distance_mm[0] == pytest.approx(2.0)
    assert match.false_positive_scores.tolist() == [0.9]
    assert match.ignored == 1


def test_a_detection_hitting_two_targets_goes_to_the_nearest():
    targets = Targets(np.array([[10.0, 10.0], [10.0, 14.0]]), np.array([5.0, 5.0]), ISO)
    match = match_detections(np.array([[10.0, 13.0]]), np.array([0.6]), targets)
    assert math.isnan(match.target_scores[0])
    assert match.target_scores[1] == 0.6
    assert match.ignored == 0 and match.false_positive_scores.size == 0


def test_duplicates_are_ignored_and_the_best_score_counts():
    targets = Targets(np.array([[10.0, 10.0]]), np.array([4.0]), ISO)
    points = np.array([[10.0, 11.0], [10.0, 12.0], [9.0, 10.0]])
    match = match_detections(points, np.array([0.3, 0.9, 0.5]), targets)
    assert match.target_scores.tolist() == [0.9]
    assert match.target_distance_mm[0] == pytest.approx(2.0)
    assert match.ignored == 2 and match.false_positive_scores.size == 0
    froc = froc_curve([match])
    np.testing.assert_allclose(froc.fp_per_image, [0.0])  # ignored hits are no false positives
    assert average_precision([match]) == 1.0


def test_an_image_without_targets_only_adds_false_positives():
    negative = match_detections(np.array([[1.0, 1.0], [4.0, 4.0]]), np.array([0.5, 0.2]), _none())
    assert negative.false_positive_scores.tolist() == [0.5, 0.2] and negative.target_scores.size == 0
    positive = match_detections(
        np.array([[5.0, 5.0]]), np.array([0.8]), Targets(np.array([[5.0, 5.0]]), np.array([1.0]), ISO)
    )
    froc = froc_curve([positive, negative])
    np.testing.assert_allclose(froc.fp_per_image, [0, 0.5, 1])  # two images in the denominator
    np.testing.assert_allclose(froc.sensitivity, [1, 1, 1])
    only_negative = froc_curve([negative])
    assert np.isnan(only_negative.sensitivity).all()
    assert math.isnan(competition_performance_metric(only_negative))
    assert math.isnan(average_precision([negative]))
    summary = summarize_detection([negative], bootstrap=20)
    assert summary["cpm"] is None and summary["cpm_ci"] == [None, None] and summary["false_positives"] == 2


def test_no_detection_at_all():
    targets = Targets(np.array([[5.0, 5.0]]), np.array([1.0]), ISO)
    match = match_detections(np.zeros((0, 2)), np.zeros(0), targets)
    froc = froc_curve([match])
    assert competition_performance_metric(froc) == 0.0
    assert average_precision([match]) == 0.0


def test_three_dimensional_anisotropic_targets():
    targets = Targets(np.array([[4.0, 20.0, 20.0]]), np.array([5.0]), (2.5, 0.7, 0.7))
    match = match_detections(np.array([[5.0, 22.0, 20.0], [6.0, 20.0, 20.0]]), np.array([0.4, 0.9]), targets)
    # (1 * 2.5, 2 * 0.7) -> 2.87 mm, a hit; 2 slices -> 5 mm, on the radius, also a hit (and the better score)
    assert match.target_scores.tolist() == [0.9]
    assert match.target_distance_mm[0] == pytest.approx(5.0)
    assert match.ignored == 1


def test_targets_from_an_instance_map():
    instance_map = np.zeros((12, 12), int)
    instance_map[2:4, 2:4] = 1  # 4 voxels of 0.5 x 0.5 mm = 1 mm^2: radius sqrt(1 / pi)
    instance_map[8:11, 6:9] = 2
    targets = Targets.from_instance_map(instance_map, (0.5, 0.5))
    np.testing.assert_allclose(targets.centres, [[2.5, 2.5], [9.0, 7.0]])
    assert targets.radii_mm[0] == pytest.approx(math.sqrt(1 / math.pi))


def test_shape_mismatches_are_refused():
    targets = Targets(np.array([[5.0, 5.0]]), np.array([1.0]), ISO)
    with pytest.raises(MedlearnError, match="shape"):
        match_detections(np.zeros((3, 3)), np.zeros(3), targets)
    with pytest.raises(MedlearnError, match="scores"):
        match_detections(np.zeros((3, 2)), np.zeros(2), targets)
    with pytest.raises(MedlearnError):
        Targets(np.zeros((2, 2)), np.zeros(3), ISO)
    with pytest.raises(MedlearnError):
        Targets(np.zeros((2, 3)), np.zeros(2), ISO)
    with pytest.raises(MedlearnError, match="instance map"):
        Targets(np.zeros((1, 2)), np.zeros(1), ISO, np.full((4, 4), 2))
    with pytest.raises(MedlearnError):
        froc_curve([])


def test_summary_bootstrap_is_seeded_and_contains_the_estimate():
    rng = np.random.default_rng(3)
    matches = []
    for i in range(30):
        centres = rng.uniform(10, 90, size=(2, 2))
        targets = Targets(centres, np.array([3.0, 3.0]), ISO)
        found = centres + rng.normal(0, 0.5, size=centres.shape)
        noise = rng.uniform(200, 300, size=(3, 2))  # far from every target
        points = np.concatenate([found, noise])
        scores = np.concatenate([rng.uniform(0.3, 1.0, 2), rng.uniform(0.0, 0.7, 3)])
        if i % 5 == 0:
            points, scores = points[1:], scores[1:]  # a missed target now and then
        matches.append(match_detections(points, scores, targets, f"case{i}"))
    summary = summarize_detection(matches, bootstrap=200, seed=7)
    again = summarize_detection(matches, bootstrap=200, seed=7)
    other = summarize_detection(matches, bootstrap=200, seed=8)
    assert summary == again
    assert summary["cpm_ci"] != other["cpm_ci"]
    low, high = summary["cpm_ci"]
    assert low <= summary["cpm"] <= high and low < high
    low, high = summary["average_precision_ci"]
    assert low <= summary["average_precision"] <= high
    assert summary["targets"] == 60 and summary["detected"] == 54 and summary["images"] == 30
    assert [p["fp_per_image"] for p in summary["froc"]] == list(LUNA16_FP_RATES)
    assert summary["cpm"] == pytest.approx(np.mean([p["sensitivity"] for p in summary["froc"]]))
    assert summary["sensitivity_at_1fp"] == summary["froc"][3]["sensitivity"]
    assert 0 < summary["mean_distance_mm"] < 3
    assert summary["fp_rates_note"] == (
        "sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 false positives per image, LUNA16's operating points; "
        "CPM is their mean"
    )
    json.dumps(summary, allow_nan=False)
