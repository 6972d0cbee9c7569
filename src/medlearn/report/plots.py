"""Figures for reports, rendered off-screen to PNG bytes with one consistent, readable style.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot global state, so
nothing leaks between calls or threads) and returns the PNG as bytes; :func:`png_data_uri` turns
them into an ``<img src>`` value for self-contained HTML.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec

import matplotlib

matplotlib.use("Agg")  # off-screen rendering; reports are written on headless machines

import numpy as np  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402
from sklearn.metrics import auc as area_under_curve  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from medlearn.evaluation.calibration import reliability_bins  # noqa: E402
from medlearn.evaluation.classification import as_probability_matrix  # noqa: E402

P = ParamSpec("P")

#: Colours shared by all figures (colour-blind-safe, after Okabe & Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
DPI = 110
_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
}


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding a PNG in HTML without a separate file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _to_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _styled(draw: Callable[P, Figure]) -> Callable[P, bytes]:
    """Turn a figure-building function into one returning PNG bytes, drawn in the shared style."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> bytes:
        with matplotlib.rc_context(_STYLE):
            return _to_png(draw(*args, **kwargs))

    return wrapper


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i, row in enumerate(history):
        value = row.get(key)
        if value is None:
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            xs.append(float(row.get("epoch", i + 1)))
            ys.append(v)
    return np.asarray(xs), np.asarray(ys)


def monitor_key(history: Sequence[Mapping[str, Any]], monitor: str) -> str:
    """The history column of the monitored metric: ``monitor`` itself or ``val_<monitor>``."""
    keys = {k for row in history for k in row}
    if monitor in keys:
        return monitor
    if f"val_{monitor}" in keys:
        return f"val_{monitor}"
    return monitor


_ACRONYMS = {"auc": "AUC", "ece": "ECE", "lr": "learning rate", "f1": "F1", "dice": "Dice"}


def pretty_metric(key: str) -> str:
    """Readable name of a history column: ``val_auc`` -> ``validation AUC``."""
    words = key.replace("val_", "validation_", 1).replace("train_", "training_", 1).split("_")
    return " ".join(_ACRONYMS.get(w, w) for w in words)


@_styled
def training_curves(history: Sequence[Mapping[str, Any]], monitor: str, mode: str = "max") -> Figure:
    """Loss (training and validation), validation metrics, and learning rate per epoch.

    The epoch with the best ``monitor`` value (``mode`` "max" or "min") is marked in every panel.
    """
    has_lr = any(row.get("lr") is not None for row in history)
    fig = _figure(9.2, 3.3)
    axes = fig.subplots(1, 3 if has_lr else 2)
    key = monitor_key(history, monitor)
    mx, my = _series(history, key)
    best = None
    if len(my):
        best = mx[int(np.argmax(my) if mode == "max" else np.argmin(my))]

    ax = axes[0]
    for i, name in enumerate(("train_loss", "val_loss")):
        x, y = _series(history, name)
        if len(x):
            ax.plot(x, y, marker="o", ms=3, color=PALETTE[i], label=pretty_metric(name))
    ax.set(title="Loss", xlabel="epoch", ylabel="loss")

    ax = axes[1]
    metric_keys = sorted({k for row in history for k in row if k.startswith("val_") and k != "val_loss" and k != key})
    if len(mx):
        ax.plot(mx, my, marker="o", ms=4, lw=2.2, color=PALETTE[0], label=f"{pretty_metric(key)} (monitored)")
    for i, name in enumerate(metric_keys[:5]):
        x, y = _series(history, name)
        if len(x):
            ax.plot(x, y, lw=1.2, alpha=0.8, color=PALETTE[(i + 1) % len(PALETTE)], label=pretty_metric(name))
    ax.set(title="Validation metrics", xlabel="epoch", ylabel="value")

    if has_lr:
        ax = axes[2]
        x, y = _series(history, "lr")
        ax.plot(x, y, color=PALETTE[2], marker="o", ms=3)
        if len(y) and (y > 0).all() and y.max() / y.min() > 20:
            ax.set_yscale("log")
        else:
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.set(title="Learning rate", xlabel="epoch", ylabel="learning rate")

    for ax in axes:
        if best is not None:
            ax.axvline(best, color="#777777", ls="--", lw=1, label=f"best epoch ({best:g})")
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[:2]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best")
    return fig


@_styled
def roc_plot(
    y_true: np.ndarray,
    probs: np.ndarray,
    positive: int = 1,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """ROC curve with its AUC and the operating point of the arg-max decision.

    Binary: the positive class's curve. Multi-class: one one-vs-rest curve per class.
    """
    y = np.asarray(y_true).astype(int).ravel()
    p = as_probability_matrix(probs)
    k = p.shape[1]
    names = list(class_names) if class_names else [str(i) for i in range(k)]
    pred = p.argmax(axis=1)
    fig = _figure(5.2, 5.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", ls=":", lw=1, label="chance (AUC 0.50)")
    classes = [positive] if k == 2 else list(range(k))
    for i, c in enumerate(classes):
        truth = y == c
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth.astype(int), p[:, c])
        auc = float(area_under_curve(fpr, tpr))
        label = f"AUC {auc:.3f}" if k == 2 else f"{names[c]} vs rest (AUC {auc:.3f})"
        ax.plot(fpr, tpr, lw=2, color=PALETTE[i % len(PALETTE)], label=label)
        sens = float((pred[truth] == c).mean())
        spec = float((pred[~truth] != c).mean())
        ax.plot(
            1 - spec,
            sens,
            "o",
            ms=8,
            mfc="white",
            mew=2,
            color=PALETTE[i % len(PALETTE)],
            label=f"operating point: sens {sens:.2f}, spec {spec:.2f}" if k == 2 else None,
        )
    title = f"ROC curve: {names[positive]!s} vs {names[1 - positive]!s}" if k == 2 else "ROC curves (one vs rest)"
    ax.set(
        title=textwrap.shorten(title, 60),
        xlabel="1 − specificity (false-positive rate)",
        ylabel="sensitivity (true-positive rate)",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
        aspect="equal",
    )
    ax.legend(loc="lower right")
    return fig


@_styled
def confusion_matrix_plot(cm: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Counts with row percentages (share of each true class), shaded by the row percentage."""
    counts = np.asarray(cm)
    k = counts.shape[0]
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    size = min(8.0, 3.4 + 0.6 * k)
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    cmap = LinearSegmentedColormap.from_list("medlearn_blues", ["#f4f8fb", PALETTE[0]])
    image = ax.imshow(share * 100, cmap=cmap, vmin=0, vmax=100)
    ax.grid(False)
    for i in range(k):
        for j in range(k):
            dark = share[i, j] > 0.55
            ax.text(
                j,
                i,
                f"{counts[i, j]:d}\n{share[i, j] * 100:.1f}%",
                ha="center",
                va="center",
                fontsize=11 if k <= 4 else 9 if k <= 7 else 7,
                color="white" if dark else "#222222",
                fontweight="bold" if i == j else "normal",
            )
    labels = [textwrap.shorten(str(n), 18) for n in class_names]
    ax.set_xticks(range(k), labels, rotation=0 if k <= 4 else 45, ha="center" if k <= 4 else "right")
    ax.set_yticks(range(k), labels)
    ax.set(title="Confusion matrix (count, % of true class)", xlabel="predicted class", ylabel="true class")
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of true class")
    return fig


@_styled
def reliability_diagram(
    y_true: np.ndarray,
    probs_before: np.ndarray,
    probs_after: np.ndarray | None = None,
    n_bins: int = 15,
    temperature: float | None = None,
) -> Figure:
    """Accuracy against confidence per bin, before (and after) temperature scaling, with ECE.

    A perfectly calibrated model lies on the diagonal; the lower panel shows how many cases fall
    into each confidence bin, since sparse bins are noisy.
    """
    fig = _figure(6.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    floor = 1.0 / as_probability_matrix(probs_before).shape[1]  # top-label confidence is never lower
    top.plot([floor, 1], [floor, 1], color="#999999", ls=":", lw=1, label="perfect calibration")
    series = [("before scaling", probs_before, PALETTE[1])]
    if probs_after is not None:
        after = "after scaling" + (f" (T = {temperature:.2f})" if temperature is not None else "")
        series.append((after, probs_after, PALETTE[0]))
    width = 1.0 / n_bins
    for i, (label, probs, colour) in enumerate(series):
        bins = reliability_bins(probs, y_true, n_bins)
        centres = (bins.edges[:-1] + bins.edges[1:]) / 2
        used = bins.count > 0
        top.plot(
            bins.confidence[used],
            bins.accuracy[used],
            marker="o",
            ms=5,
            lw=1.8,
            color=colour,
            label=f"{label}: ECE {bins.ece:.3f}",
        )
        offset = (i - (len(series) - 1) / 2) * width * 0.4
        bottom.bar(centres + offset, bins.count, width=width * 0.4, color=colour, alpha=0.85)
    top.set(
        title="Reliability diagram",
        ylabel="observed accuracy",
        xlim=(floor - 0.02, 1.01),
        ylim=(0, 1.02),
    )
    top.legend(loc="upper left")
    bottom.set(xlabel="predicted confidence (probability of the predicted class)", ylabel="cases (log)")
    bottom.set_yscale("symlog", linthresh=10)
    bottom.yaxis.set_major_formatter(ScalarFormatter())
    return fig


def _grid_shape(n: int, ncols: int) -> tuple[int, int]:
    cols = max(1, min(ncols, n))
    return max(1, math.ceil(n / cols)), cols


def _as_display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return img.astype(np.float32), "gray"
    return img, None


@_styled
def image_grid(
    items: Sequence[tuple[np.ndarray, str]],
    ncols: int = 6,
    title: str | None = None,
    cell: float = 1.9,
) -> Figure:
    """Images in a grid, each with a short caption.

    Grey ``HxW`` images with values in [0, 1] are shown on that fixed scale (so brightness is
    comparable between images); other grey images are stretched to their own range; RGB as is.
    """
    rows, cols = _grid_shape(len(items), ncols)
    fig = _figure(cols * cell, rows * (cell + 0.35) + (0.3 if title else 0))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (image, caption) in zip(axes, items, strict=False):
        img, cmap = _as_display(image)
        if cmap:
            in_unit_range = img.min() >= 0 and img.max() <= 1
            lo, hi = (0.0, 1.0) if in_unit_range else (float(img.min()), float(img.max()))
            ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1)
        else:
            ax.imshow(img)
        ax.set_title("\n".join(textwrap.wrap(str(caption), int(cell * 13))[:2]), fontsize=10, fontweight="normal")
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig


def sample_montage(items: Sequence[tuple[np.ndarray, str]], ncols: int = 6) -> bytes:
    """A grid of example images labelled with their class (what the model was trained on)."""
    return image_grid(items, ncols=ncols, cell=1.5)


def gradcam_grid(items: Sequence[tuple[np.ndarray, np.ndarray, str]], ncols: int = 4) -> bytes:
    """Grad-CAM overlays (red = most influential for the prediction) with their captions."""
    from medlearn.evaluation.gradcam import overlay  # on first use: only classification reports show Grad-CAM

    return image_grid([(overlay(image, cam), caption) for image, cam, caption in items], ncols=ncols, cell=2.3)


@_styled
def histogram(
    values: np.ndarray | None,
    title: str,
    xlabel: str,
    bins: int = 30,
    ylabel: str = "count",
    groups: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """A histogram of ``values``, or overlaid histograms of several named ``groups``."""
    fig = _figure(6.0, 3.4)
    ax = fig.subplots()
    data = dict(groups) if groups else {"": np.asarray(values)}
    finite = [np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))] for v in data.values()]
    everything = np.concatenate(finite) if finite else np.zeros(0)
    edges = np.histogram_bin_edges(everything, bins=bins) if everything.size else bins
    for i, (name, v) in enumerate(zip(data, finite, strict=True)):
        ax.hist(v, bins=edges, alpha=0.6 if groups else 0.9, color=PALETTE[i % len(PALETTE)], label=name or None)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if groups:
        ax.legend()
    return fig


@_styled
def metrics_vs_fraction_plot(
    summary: Sequence[Mapping[str, Any]], arms: Sequence[str], metrics: Sequence[str]
) -> Figure:
    """``metrics`` (%) against the share of training labels, one panel per metric, one line per arm.

    ``summary`` has one entry per (arm, fraction): ``{"arm", "fraction", <metric>: {"mean", "low", "high"}}``
    with values in [0, 1]; ``low``/``high`` (a t-interval over seeds, None with one seed) become error bars.
    """
    fig = _figure(10.5, 3.5)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    fractions = sorted({e["fraction"] for e in summary})
    for ax, metric in zip(axes, metrics, strict=True):
        for i, arm in enumerate(arms):
            entries = [e for e in summary if e["arm"] == arm and e[metric]["mean"] is not None]
            if not entries:
                continue
            shift = 1 + 0.04 * (i - (len(arms) - 1) / 2)  # small offsets on the log axis keep bars apart
            x = np.array([100 * e["fraction"] * shift for e in entries])
            y = np.array([100 * e[metric]["mean"] for e in entries])
            low = np.array([100 * e[metric]["low"] if e[metric]["low"] is not None else np.nan for e in entries])
            high = np.array([100 * e[metric]["high"] if e[metric]["high"] is not None else np.nan for e in entries])
            yerr = np.nan_to_num(np.vstack([y - low, high - y]), nan=0.0)
            ax.errorbar(x, y, yerr=yerr, marker="o", ms=4, capsize=3, color=PALETTE[i % len(PALETTE)], label=arm)
        ax.set_xscale("log")
        ax.set_xticks([100 * f for f in fractions])
        ax.set_xticklabels([f"{100 * f:g}%" for f in fractions])
        ax.minorticks_off()
        ax.set(title=metric, xlabel="share of training labels", ylabel=f"test {metric} (%)")
    axes[0].legend(loc="lower right")
    return fig


def _label_sparsely(ax: Any, x: np.ndarray, y: np.ndarray, names: Sequence[str] | None, count: int) -> None:
    """Name the ``count`` lowest points (the failures a reader wants identified), not every point; labels alternate
    above and below their point so neighbours do not overwrite each other."""
    if not names or count <= 0:
        return
    for rank, i in enumerate(np.argsort(y, kind="stable")[:count]):
        ax.annotate(
            textwrap.shorten(str(names[i]), 22),
            (x[i], y[i]),
            xytext=(5, 5 if rank % 2 == 0 else -12),
            textcoords="offset points",
            fontsize=8,
            color="#444444",
        )


@_styled
def dice_vs_case_properties(
    model_dice: Sequence[float],
    foreground_share: Sequence[float],
    mean_intensity: Sequence[float],
    *,
    baseline_dice: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
    model_label: str = "model",
    baseline_label: str = "baseline",
    intensity_label: str = "mean image intensity",
    labelled: int = 3,
) -> Figure:
    """Per-case Dice against the case's foreground share (log axis) and its mean intensity, two panels.

    Failures concentrate on small structures or unusual intensities; this shows which, and whether the classical
    baseline (second marker) fails on the same cases. Cases without foreground sit at the left edge of the first
    panel (marked); cases with no Dice (NaN) are left out; the ``labelled`` worst model cases are named.
    """
    dice = np.asarray(model_dice, dtype=float)
    share = np.asarray(foreground_share, dtype=float)
    intensity = np.asarray(mean_intensity, dtype=float)
    baseline = None if baseline_dice is None else np.asarray(baseline_dice, dtype=float)
    positive = share[np.isfinite(share) & (share > 0)]
    floor = float(positive.min()) / 3 if positive.size else 1e-4
    shown_share = np.where(np.isfinite(share) & (share > 0), share, floor)
    fig = _figure(10.0, 3.8)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, x, xlabel in (
        (axes[0], shown_share, "foreground share of the case (log)"),
        (axes[1], intensity, intensity_label),
    ):
        series = [(dice, model_label, "o", PALETTE[0], 0.8)]
        if baseline is not None:
            series.append((baseline, baseline_label, "x", PALETTE[1], 1.0))
        for values, label, marker, colour, alpha in series:
            keep = np.isfinite(values) & np.isfinite(x)
            ax.scatter(x[keep], values[keep], marker=marker, s=30, color=colour, alpha=alpha, label=label)
        keep = np.isfinite(dice) & np.isfinite(x)
        _label_sparsely(
            ax,
            x[keep],
            dice[keep],
            None if names is None else [n for n, k in zip(names, keep, strict=True) if k],
            labelled,
        )
        ax.set(xlabel=xlabel, ylim=(-0.03, 1.05))
    axes[0].set_xscale("log")
    if np.any(~(np.isfinite(share) & (share > 0))):
        axes[0].axvline(floor, color="#999999", ls=":", lw=1, label="no foreground")
    axes[0].set(title="Dice vs structure size", ylabel="Dice per case")
    axes[1].set(title="Dice vs image intensity")
    axes[0].legend(loc="lower right")
    return fig


@_styled
def intensity_histograms(
    train_values: np.ndarray | Sequence[np.ndarray],
    test_values: np.ndarray | Sequence[np.ndarray],
    *,
    train_label: str = "training cases",
    test_label: str = "evaluated cases",
    xlabel: str = "intensity (original units)",
    bins: int = 80,
    log_density: bool = False,
    title: str = "Intensity distributions",
) -> Figure:
    """Density-normalised intensity histograms of the training and the evaluated cases, overlaid, with medians.

    A global threshold or a network trained on one intensity distribution fails on another; a shift shows as
    displaced curves. The axis spans the pooled 0.5-99.5 percentiles so rare outliers do not squash the rest;
    ``log_density`` helps when a background peak (zeros around a brain) dwarfs everything else.
    """
    groups = [
        (train_label, _flat_finite(train_values), PALETTE[0]),
        (test_label, _flat_finite(test_values), PALETTE[1]),
    ]
    pooled = np.concatenate([values for _, values, _ in groups])
    fig = _figure(6.4, 3.6)
    ax = fig.subplots()
    if pooled.size:
        low, high = (float(v) for v in np.percentile(pooled, [0.5, 99.5]))
        if high <= low:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, bins + 1)
        for label, values, colour in groups:
            if not values.size:
                continue
            median = float(np.median(values))
            ax.hist(
                values[(values >= low) & (values <= high)],
                bins=edges,
                density=True,
                histtype="stepfilled",
                alpha=0.35,
                color=colour,
                edgecolor=colour,
                linewidth=1.2,
                label=f"{label} (median {median:.4g}, n = {values.size:,})",
            )
            ax.axvline(median, color=colour, ls="--", lw=1.2)
        if log_density:
            ax.set_yscale("log")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top * (8 if log_density else 1.3))  # room for the legend above the curves
        ax.legend(loc="upper center")
    ax.set(title=title, xlabel=xlabel, ylabel="density" + (" (log)" if log_density else ""))
    return fig


def _flat_finite(values: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """One flat float array of the finite values of an array or of a sequence of arrays of any shapes."""
    parts = [values] if isinstance(values, np.ndarray) else [np.asarray(v) for v in values]
    flat = np.concatenate([np.asarray(p, dtype=float).ravel() for p in parts]) if parts else np.zeros(0)
    return flat[np.isfinite(flat)]


@_styled
def froc_plot(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    rates: Sequence[float] = (0.125, 0.25, 0.5, 1, 2, 4, 8),
    cpm: Mapping[str, float | None] | None = None,
) -> Figure:
    """FROC curves (sensitivity against false positives per image, log2 axis) of several detectors, e.g. the
    model and its classical baseline; the rates of the CPM are marked on the axis."""
    fig = _figure(6.0, 4.4)
    ax = fig.subplots()
    low, high = min(rates) / 2, max(rates) * 2
    for i, (name, (fp, sensitivity)) in enumerate(curves.items()):
        fp = np.asarray(fp, dtype=float)
        sensitivity = np.asarray(sensitivity, dtype=float)
        if not len(fp):
            continue
        # the curve holds its first sensitivity towards 0 and its last beyond its largest rate, as the CPM reads it
        x = np.concatenate([[low], np.clip(fp, low, None), [high]])
        y = np.concatenate([[sensitivity[0]], sensitivity, [sensitivity[-1]]])
        value = (cpm or {}).get(name)
        label = f"{name} (CPM {value:.3f})" if value is not None else name
        ax.plot(x, y, lw=2, color=PALETTE[i % len(PALETTE)], label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(rates))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set(
        title="FROC",
        xlabel="false positives per image",
        ylabel="sensitivity (share of objects found)",
        xlim=(low, high),
        ylim=(-0.02, 1.02),
    )
    ax.legend(loc="lower right")
    return fig


@_styled
def precision_at_rank_plot(curves: Mapping[str, Sequence[float]]) -> Figure:
    """Mean precision@r against the rank cut-off r, one line per embedder (the first is the model)."""
    fig = _figure(5.5, 3.5)
    ax = fig.subplots()
    for i, (name, values) in enumerate(curves.items()):
        ranks = np.arange(1, len(values) + 1)
        ax.plot(ranks, values, marker="o", ms=4, lw=2.2 if i == 0 else 1.4, color=PALETTE[i % len(PALETTE)], label=name)
    ax.set(xlabel="rank cut-off r", ylabel="mean precision@r", ylim=(-0.02, 1.02))
    ax.set_xticks(np.arange(1, max(len(v) for v in curves.values()) + 1))
    ax.legend(loc="lower left")
    return fig
