"""The classical classification baseline: it learns real signal from Br35H, it is stored as JSON and loaded back
exactly, and the report says in plain words when the model does not beat it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines import compare_to_baseline
from medlearn.evaluation.baselines.classification import (
    NAME,
    ClassificationBaseline,
    fit_classification_baseline,
)
from medlearn.evaluation.classification import classification_metrics, metrics_with_intervals, to_jsonable


def _blobs(n: int, classes: int, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise images whose class sets a bright square's size: a signal that intensity histograms see."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    arrays = rng.normal(0, 1, size=(n, 1, size, size)).astype(np.float16)
    for i, label in enumerate(labels):
        side = 6 + 8 * int(label)
        top, left = rng.integers(0, size - side, size=2)
        arrays[i, 0, top : top + side, left : left + side] += 2.5
    return arrays, labels


def test_save_and_load_give_identical_probabilities(tmp_path: Path):
    arrays, labels = _blobs(60, 3)
    baseline = fit_classification_baseline(arrays[:45], labels[:45], ["a", "b", "c"], seed=0)
    path = baseline.save(tmp_path / "baseline.json")
    stored = json.loads(path.read_text())  # plain JSON: no pickle anywhere
    assert stored["name"] == NAME and stored["classes"] == ["a", "b", "c"]
    loaded = ClassificationBaseline.load(path)
    before, after = baseline.probabilities(arrays[45:]), loaded.probabilities(arrays[45:])
    assert before.shape == (15, 3)
    assert np.allclose(before.sum(axis=1), 1.0)
    assert np.array_equal(before, after)
    assert (before.argmax(axis=1) == labels[45:]).mean() > 0.8  # the square's size is easy to see


def test_a_class_absent_from_training_gets_probability_zero():
    arrays, labels = _blobs(40, 2)
    baseline = fit_classification_baseline(arrays, labels * 2, ["small", "unseen", "large"])
    probs = baseline.probabilities(arrays[:5])
    assert probs.shape == (5, 3)
    assert np.all(probs[:, 1] == 0) and np.allclose(probs.sum(axis=1), 1.0)


def test_one_class_cannot_be_fitted():
    arrays, _ = _blobs(10, 2)
    with pytest.raises(MedlearnError, match="two classes"):
        fit_classification_baseline(arrays, np.zeros(10, dtype=int), ["no", "yes"])


@pytest.mark.parametrize("text", ["{not json", '{"format": "something else", "version": 1}', '{"format": "x"}'])
def test_damaged_baseline_file_is_an_error_naming_it(tmp_path: Path, text: str):
    path = tmp_path / "baseline.json"
    path.write_text(text)
    with pytest.raises(MedlearnError) as caught:
        ClassificationBaseline.load(path)
    assert caught.value.path == str(path)


def test_truncated_arrays_in_the_file_are_refused(tmp_path: Path):
    arrays, labels = _blobs(20, 2)
    path = fit_classification_baseline(arrays, labels, ["no", "yes"]).save(tmp_path / "baseline.json")
    doc = json.loads(path.read_text())
    doc["coefficients"][0] = doc["coefficients"][0][:-1]
    path.write_text(json.dumps(doc))
    with pytest.raises(MedlearnError, match="do not fit together"):
        ClassificationBaseline.load(path)


def test_learns_a_real_signal_on_held_out_br35h_images(br35h_root: Path):
    """300 real MR slices, near-duplicates grouped before a 70/30 split: well above chance on the held-out part."""
    from medlearn.apps.classification.settings import ClassifierSettings
    from medlearn.data.dedup import assign_groups
    from medlearn.data.preload import preload
    from medlearn.data.sources import load_samples
    from medlearn.data.splits import split_samples

    samples = sorted(load_samples(str(br35h_root)), key=lambda s: str(s.path))[::10]
    split = split_samples(assign_groups(samples), val=0.0, test=0.3, seed=0)
    train_groups = {s.group_key for s in split.train}
    assert not any(s.group_key in train_groups for s in split.test)
    preprocessing = ClassifierSettings(modality="MR", image_size=64).preprocessing
    train = preload(split.train, preprocessing, show_progress=False)
    test = preload(split.test, preprocessing, show_progress=False)
    classes = ["no", "yes"]
    y_train = np.array([classes.index(s.label) for s in train.samples])
    y_test = np.array([classes.index(s.label) for s in test.samples])
    assert len(y_test) >= 80 and set(y_test) == {0, 1}

    baseline = fit_classification_baseline(train.arrays, y_train, classes, seed=0)
    scores = classification_metrics(y_test, baseline.probabilities(test.arrays), positive=1)
    assert scores["balanced_accuracy"] > 0.7  # chance is 0.5
    assert scores["auc"] > 0.8


# ------------------------------------------------------------------------------------------------
# the report's "Classical baseline" part


def _report_html(tmp_path: Path, baseline_probs: np.ndarray | None, model_probs: np.ndarray, y: np.ndarray) -> str:
    from medlearn.apps.classification.report import write_classification_report

    metrics = to_jsonable(metrics_with_intervals(y, model_probs, positive=1, n_boot=50))
    metrics["baseline"] = {}
    if baseline_probs is not None:
        point = classification_metrics(y, baseline_probs, positive=1)
        metrics["baseline"] = {NAME: to_jsonable(point)}
        metrics["baseline_comparison"] = compare_to_baseline(
            metrics, metrics["baseline"], "balanced_accuracy"
        ).to_dict()
    else:
        metrics["baseline_note"] = "No classical baseline: split.csv is missing."
    path = write_classification_report(
        tmp_path / "report.html",
        title="t",
        summary={"model": "cls-shallow"},
        config={},
        environment={},
        data_summary={"counts": {"test": {"no": int((y == 0).sum()), "yes": int((y == 1).sum())}}},
        montage=[],
        history=[],
        monitor="loss",
        class_names=["no", "yes"],
        positive=1,
        y_true=y,
        probs=model_probs,
        metrics=metrics,
        calibration=None,
        gradcam=None,
    )
    return path.read_text()


def _probs(y: np.ndarray, correct: float, seed: int) -> np.ndarray:
    """Probabilities that pick the true class for a share ``correct`` of the cases."""
    rng = np.random.default_rng(seed)
    right = rng.uniform(size=len(y)) < correct
    p_yes = np.where(right == (y == 1), 0.8, 0.2)
    return np.stack([1 - p_yes, p_yes], axis=1)


def test_report_warns_in_plain_words_when_the_baseline_wins(tmp_path: Path):
    y = np.arange(80) % 2
    html = _report_html(tmp_path, _probs(y, 0.9, 1), _probs(y, 0.6, 2), y)
    assert "Classical baseline" in html
    assert "does NOT beat its classical baseline" in html
    assert '<div class="callout"><strong>Warning:</strong> The model does NOT beat' in html


def test_report_states_a_win_without_warning(tmp_path: Path):
    y = np.arange(80) % 2
    html = _report_html(tmp_path, _probs(y, 0.6, 1), _probs(y, 0.95, 2), y)
    assert "The model beats its classical baseline" in html
    assert "does NOT beat" not in html and "Warning:" not in html


def test_report_explains_a_missing_baseline(tmp_path: Path):
    y = np.arange(40) % 2
    html = _report_html(tmp_path, None, _probs(y, 0.9, 2), y)
    assert "Classical baseline" in html and "split.csv is missing" in html
