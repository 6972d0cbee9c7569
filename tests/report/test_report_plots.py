"""Every report figure renders to a valid PNG of a sensible size, also for awkward inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medlearn.report import plots


def _png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    assert 200 <= image.width <= 1400 and 150 <= image.height <= 2000
    return image


@pytest.fixture(scope="module")
def predictions() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    z = rng.normal(size=(200, 3))
    z[np.arange(200), y] += 2
    return y, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def test_training_curves_with_gaps_and_prefixed_monitor() -> None:
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_auc": 1 - 0.5 / e, "lr": 1e-3 / e, "seconds": 3}
        for e in range(1, 8)
    ]
    history[3]["val_loss"] = None  # a skipped validation must not break the figure
    assert plots.monitor_key(history, "auc") == "val_auc"
    _png(plots.training_curves(history, "auc"))
    _png(plots.training_curves([{"epoch": 1, "train_loss": 0.5}], "val_dice"))  # no metric, no lr


def test_pretty_metric_names() -> None:
    assert plots.pretty_metric("val_auc") == "validation AUC"
    assert plots.pretty_metric("train_loss") == "training loss"


def test_roc_binary_and_multiclass(predictions) -> None:
    y, p = predictions
    binary_y = (y == 0).astype(int)
    binary_p = np.stack([1 - p[:, 0], p[:, 0]], axis=1)
    _png(plots.roc_plot(binary_y, binary_p, 1, ["other", "class 0"]))
    _png(plots.roc_plot(y, p, 1, ["a", "b", "c"]))


def test_confusion_matrix_has_cells_for_empty_rows() -> None:
    cm = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 7]])
    image = _png(plots.confusion_matrix_plot(cm, ["a", "b", "a very long class name indeed"]))
    assert image.width > image.height * 0.8


def test_reliability_diagram_before_and_after(predictions) -> None:
    y, p = predictions
    soft = p**0.5 / (p**0.5).sum(axis=1, keepdims=True)
    _png(plots.reliability_diagram(y, p, soft, temperature=2.0))
    _png(plots.reliability_diagram(y, p))


def test_image_grids() -> None:
    rng = np.random.default_rng(1)
    images = [(rng.uniform(size=(40, 50)), f"case {i}") for i in range(7)]
    grid = _png(plots.sample_montage(images, ncols=4))
    assert grid.width > grid.height  # 4 columns, 2 rows
    cams = [(img, rng.uniform(size=img.shape), "true: yes · pred: no · p=0.61") for img, _ in images[:3]]
    _png(plots.gradcam_grid(cams))
    _png(
        plots.image_grid(
            [(rng.uniform(size=(3, 20, 20)), "channel-first RGB"), (rng.normal(size=(20, 20)) * 900, "CT")]
        )
    )


def test_histogram_single_and_grouped() -> None:
    rng = np.random.default_rng(2)
    _png(plots.histogram(rng.normal(size=500), "Intensities", "value (HU)"))
    _png(plots.histogram(None, "Scores", "probability", groups={"yes": rng.uniform(size=50), "no": [np.nan, 0.2]}))


def test_data_uri() -> None:
    assert plots.png_data_uri(b"\x89PNG").startswith("data:image/png;base64,iVBORw")


def _has_colour(image: Image.Image, hex_colour: str, tolerance: int = 80, pixels: int = 30) -> bool:
    """True when enough pixels are close to ``hex_colour`` (a series' markers were drawn, not just anti-aliasing)."""
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    rgb = np.asarray(image.convert("RGB"), dtype=int)
    return int((np.abs(rgb - target).sum(axis=-1) < tolerance).sum()) >= pixels


def test_dice_vs_case_properties_with_and_without_baseline() -> None:
    rng = np.random.default_rng(3)
    share = 10 ** rng.uniform(-4, -0.5, 12)
    share[0] = 0.0  # a case without foreground sits at the left edge
    dice = np.clip(0.5 + 0.1 * np.log10(share + 1e-6) + 0.4, 0, 1)
    dice[1] = np.nan  # no Dice: left out
    intensity = rng.normal(100, 20, 12)
    names = [f"case_{i:02d}.nii.gz" for i in range(12)]
    both = _png(plots.dice_vs_case_properties(dice, share, intensity, baseline_dice=dice * 0.9, names=names))
    assert both.width > 1.8 * both.height  # two panels side by side
    assert _has_colour(both, plots.PALETTE[0]) and _has_colour(both, plots.PALETTE[1])
    alone = _png(plots.dice_vs_case_properties(dice, share, intensity))
    assert _has_colour(alone, plots.PALETTE[0]) and not _has_colour(alone, plots.PALETTE[1])
    _png(plots.dice_vs_case_properties([0.8], [0.0], [5.0], names=["only"]))  # one case, no positive share


def test_intensity_histograms_show_both_distributions() -> None:
    rng = np.random.default_rng(4)
    train = [rng.normal(100, 10, (32, 32)), rng.normal(105, 10, (16, 16, 4))]  # cases of any shape
    shifted = rng.normal(140, 12, 3000)
    image = _png(plots.intensity_histograms(train, shifted))
    assert _has_colour(image, plots.PALETTE[0]) and _has_colour(image, plots.PALETTE[1])
    _png(plots.intensity_histograms(np.zeros(100), np.array([np.nan, 0.0, 0.0]), log_density=True))  # constant
    _png(plots.intensity_histograms([], np.array([])))  # nothing to show still renders
