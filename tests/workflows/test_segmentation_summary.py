"""How per-case metrics become the figures users read: absent structures, missed structures, JSON-safe."""

from __future__ import annotations

import json
import math

from medlearn.apps.segmentation.evaluate import CaseResult, summarize

NAN = float("nan")


def _case(name: str) -> CaseResult:
    return CaseResult(name=name, image=name, metrics={}, seconds=0.1)


def test_absent_structures_are_left_out_and_missed_ones_counted():
    found = _case("a")
    found.metrics = {
        1: {"dice": 0.8, "iou": 0.67, "hd95_mm": 2.0, "asd_mm": 1.0},
        2: dict.fromkeys(("dice", "iou", "hd95_mm", "asd_mm"), NAN),
    }
    missed = _case("b")
    missed.outcome = "missed"  # as evaluate_cases finds it: label 1 in the truth, not predicted
    missed.metrics = {
        1: {"dice": 0.0, "iou": 0.0, "hd95_mm": math.inf, "asd_mm": math.inf},
        2: {"dice": 0.5, "iou": 0.33, "hd95_mm": 4.0, "asd_mm": 2.0},
    }
    summary = summarize([found, missed], labels=[0, 1, 2])
    assert summary["dice"] == (0.8 + 0.25) / 2  # case a: label 2 absent from truth and prediction, not a zero
    assert summary["cases_with_missed_structure"] == 1
    assert summary["hd95_mm"] == 2.0  # the missed case has no finite mean distance
    assert summary["per_class"]["1"]["dice"] == 0.4 and summary["per_class"]["2"]["dice"] == 0.5
    assert summary["per_case"][1]["hd95_mm"] is None
    json.loads(json.dumps(summary, allow_nan=False))  # strict JSON: no NaN or Infinity


def test_a_false_positive_on_an_empty_truth_is_counted_apart_and_scores_zero():
    from medlearn.evaluation.segmentation import case_outcome

    empty_truth = _case("c")
    empty_truth.metrics = {1: {"dice": 0.0, "iou": 0.0, "hd95_mm": math.inf, "asd_mm": math.inf}}
    empty_truth.outcome = case_outcome(empty_truth.metrics, {1: False})
    summary = summarize([empty_truth], labels=[0, 1])
    assert summary["cases_with_false_positive"] == 1 and summary["cases_with_missed_structure"] == 0
    assert summary["dice"] == 0.0  # counted, not dropped as undefined


def test_distances_of_images_without_a_pixel_size_are_labelled_pixels():
    case = _case("png")
    case.metrics = {1: {"dice": 0.9, "iou": 0.8, "hd95_mm": 3.0, "asd_mm": 1.0}}
    case.distance_unit = "px"
    assert summarize([case], labels=[0, 1])["distance_unit"] == "px"
    case.distance_unit = "mm"
    assert summarize([case], labels=[0, 1])["distance_unit"] == "mm"
