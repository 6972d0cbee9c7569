"""Segmentation baselines: one learned global threshold, and Otsu's threshold of each image on its own.

A network that a smoothed global intensity threshold beats must not be shipped silently (issue 12: on a
microscopy set such a threshold beat medlearn's network). Every segmentation evaluation therefore scores these
two classical methods on the same images, in the images' own units and grids.

``global-threshold`` (:func:`fit_threshold_baseline`) learns on the *training* cases, to maximise their mean
Dice (the mean over cases of the mean over foreground classes, as the metrics count it):

- a Gaussian smoothing, sigma in mm from a small grid that includes 0 (no smoothing); by default
  ``SIGMA_STEPS`` times the typical voxel size of the training images, so it suits micrometre-sized
  pixels and millimetre voxels alike;
- for multi-channel images, the channel (or the mean of all channels);
- the class order along the intensity axis: for two classes both polarities (structure brighter or darker
  than the background) are tried; for more classes they are ordered by their median intensity;
- the thresholds between consecutive classes (one global threshold for two classes).

The search is histogram-based, never a loop of full-image Dice computations: every training case's voxels
(a stratified sample of at most ``max_samples_per_class`` per class, weighted back to the true counts, so a
24-voxel lesion in a CT volume keeps all its voxels) are counted per class into bins whose edges are the
candidate thresholds. Cumulative sums of these histograms give, for every candidate at once, each class's
true positives and predicted size, hence the Dice of every case for every candidate. Several classes use
coordinate ascent over the thresholds (each step exhaustive over one threshold's range), started between the
class medians. Among equally good candidates the middle of the plateau is kept.

``otsu`` (:func:`otsu_per_image`) thresholds every image by itself with Otsu's method (multi-Otsu for more
than two classes). It takes the class order (polarity), channel and smoothing learned by the global threshold,
so the two baselines differ only in how the threshold is chosen: learned once on labelled training images, or
re-estimated unsupervised on each image (which survives a global intensity shift that breaks the former).

Both predict label maps holding the original label values, on the image's own grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medlearn.errors import InconsistentDataError, MedlearnError, NonFiniteImageError
from medlearn.io.image import MedicalImage

GLOBAL_THRESHOLD = "global-threshold"
OTSU = "otsu"
NAMES = (GLOBAL_THRESHOLD, OTSU)
DESCRIPTIONS = {
    GLOBAL_THRESHOLD: "one global intensity threshold (with Gaussian smoothing, polarity and channel) learned on "
    "the training images to maximise their Dice",
    OTSU: "Otsu's threshold of each image on its own, with the polarity and smoothing learned on the training images",
}
FORMAT = "medlearn-segmentation-threshold-baseline"
VERSION = 1
#: Smoothing grid as multiples of the training images' typical (median of the smallest) voxel spacing.
SIGMA_STEPS = (0.0, 0.5, 1.0, 2.0)
#: Voxels of one class in one case above which a weighted random sample is counted instead.
MAX_SAMPLES_PER_CLASS = 200_000
#: Number of candidate thresholds (half at quantiles of the training intensities, half evenly spaced).
CANDIDATES = 512
_TIE = 1e-9
_POLARITY_WORDS = {
    "brighter": "structures brighter than the background",
    "darker": "structures darker than the background",
    "between": "background between the structures",
}


@dataclass(frozen=True)
class ThresholdBaseline:
    """A fitted global threshold: ``order[i]`` is the label of the i-th intensity interval between ``thresholds``
    (a voxel belongs to interval ``i`` when exactly ``i`` thresholds are <= its smoothed intensity)."""

    sigma_mm: float
    channel: int | None
    order: tuple[int, ...]
    thresholds: tuple[float, ...]
    labels: tuple[int, ...]
    train_dice: float = float("nan")

    @property
    def polarity(self) -> str:
        """``"brighter"`` when the structures are brighter than the background (label 0), ``"darker"`` when darker,
        ``"between"`` when the background lies between classes (or is not in the order)."""
        if self.order[0] == 0:
            return "brighter"
        if self.order[-1] == 0:
            return "darker"
        return "between"

    def predict(self, image: MedicalImage) -> np.ndarray:
        """The label map (original label values, the image's spatial shape)."""
        values = smoothed_channel(image, self.sigma_mm, self.channel)
        positions = np.searchsorted(np.asarray(self.thresholds, dtype=np.float64), values, side="right")
        return np.asarray(self.order, dtype=_label_dtype(self.labels))[positions]

    def predict_otsu(self, image: MedicalImage) -> np.ndarray:
        """:func:`otsu_per_image` with this baseline's class order, smoothing and channel."""
        return otsu_per_image(image, self.order, sigma_mm=self.sigma_mm, channel=self.channel)

    def describe(self) -> str:
        """One plain sentence for the console and the report."""
        cut = ", ".join(f"{t:.4g}" for t in self.thresholds)
        channel = _channel_words(self.channel)
        smoothing = f"Gaussian smoothing sigma {self.sigma_mm:.3g} mm" if self.sigma_mm > 0 else "no smoothing"
        return (
            f"global threshold{'s' if len(self.thresholds) > 1 else ''} {cut} ({smoothing}{channel}; "
            f"classes from dark to bright: {', '.join(str(v) for v in self.order)}, {_POLARITY_WORDS[self.polarity]}); "
            f"training Dice {self.train_dice:.3f}"
        )

    def to_dict(self) -> dict:
        """JSON-safe (no pickle), enough to predict exactly the same label maps (``baseline.json``)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": GLOBAL_THRESHOLD,
            "sigma_mm": float(self.sigma_mm),
            "channel": self.channel,
            "order": [int(v) for v in self.order],
            "thresholds": [float(t) for t in self.thresholds],
            "labels": [int(v) for v in self.labels],
            "polarity": self.polarity,
            "train_dice": None if math.isnan(self.train_dice) else float(self.train_dice),
        }

    @classmethod
    def from_dict(cls, values: dict, source: str | None = None) -> ThresholdBaseline:
        """Inverse of :meth:`to_dict`; a malformed dictionary is a :class:`MedlearnError` naming ``source``."""
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise MedlearnError(f"not a {FORMAT} file", source)
        if values.get("version") != VERSION:
            raise MedlearnError(f"{FORMAT} version {values.get('version')!r} is not supported (need {VERSION})", source)
        try:
            order = tuple(int(v) for v in values["order"])
            thresholds = tuple(float(t) for t in values["thresholds"])
            channel = None if values["channel"] is None else int(values["channel"])
            baseline = cls(
                sigma_mm=float(values["sigma_mm"]),
                channel=channel,
                order=order,
                thresholds=thresholds,
                labels=tuple(int(v) for v in values["labels"]),
                train_dice=float("nan") if values.get("train_dice") is None else float(values["train_dice"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise MedlearnError(f"malformed {FORMAT} file: {error}", source) from error
        if len(order) != len(thresholds) + 1 or list(thresholds) != sorted(thresholds) or baseline.sigma_mm < 0:
            raise MedlearnError(f"malformed {FORMAT} file: inconsistent order and thresholds", source)
        return baseline


def fit_threshold_baseline(
    cases: Sequence[tuple[MedicalImage, np.ndarray]],
    labels: Sequence[int],
    *,
    sigmas_mm: Sequence[float] | None = None,
    max_samples_per_class: int = MAX_SAMPLES_PER_CLASS,
    candidates: int = CANDIDATES,
    seed: int = 0,
) -> ThresholdBaseline:
    """Learn smoothing, channel, class order and thresholds on training ``cases`` (image in its original units
    and grid, label map of its spatial shape holding values of ``labels``; 0, the background, is always a class).

    A class absent from every training case is left out of the order (the baseline never predicts it).
    """
    if not cases:
        raise MedlearnError("no training cases to fit the threshold baseline on")
    labels = tuple(sorted({int(v) for v in labels} | {0}))
    channels = {image.channels for image, _ in cases}
    if len(channels) > 1:
        raise InconsistentDataError(f"training images have different channel counts {sorted(channels)}")
    rng = np.random.default_rng(seed)
    prepared = [_prepare_case(image, label_map, labels, max_samples_per_class, rng) for image, label_map in cases]
    if sigmas_mm is None:
        typical = float(np.median([min(image.spacing) for image, _ in cases]))
        sigmas_mm = tuple(step * typical for step in SIGMA_STEPS)
    sigmas_mm = tuple(sorted({float(s) for s in sigmas_mm}))
    if not sigmas_mm or min(sigmas_mm) < 0:
        raise MedlearnError(f"smoothing sigmas must be >= 0 mm, got {sigmas_mm}")
    count = channels.pop()
    channel_options: list[int | None] = [0] if count == 1 else [*range(count), None]
    foreground = np.array([label != 0 for label in labels])
    best: ThresholdBaseline | None = None
    for sigma in sigmas_mm:
        for channel in channel_options:
            samples = [
                (smoothed_channel(image, sigma, channel).ravel()[index], classes, weights)
                for image, (index, classes, weights) in zip((c[0] for c in cases), prepared, strict=True)
            ]
            fitted = _fit_thresholds(samples, labels, foreground, candidates)
            if fitted is None:
                continue
            score, order, thresholds = fitted
            if best is None or score > best.train_dice + _TIE:
                best = ThresholdBaseline(sigma, channel, order, thresholds, labels, score)
    if best is None:
        present = sorted({labels[k] for _, classes, _ in prepared for k in np.unique(classes)})
        raise MedlearnError(f"the training masks hold only label(s) {present}; a threshold needs two classes")
    return best


def otsu_per_image(
    image: MedicalImage, order: Sequence[int], *, sigma_mm: float = 0.0, channel: int | None = 0
) -> np.ndarray:
    """Otsu's threshold(s) of this image alone (``len(order)`` classes; multi-Otsu beyond two), mapped to the
    labels ``order`` lists from dark to bright (take them, the smoothing and the channel from
    :class:`ThresholdBaseline`). An image Otsu cannot split (constant) is all background (label 0)."""
    from skimage.filters import threshold_multiotsu, threshold_otsu

    order = tuple(int(v) for v in order)
    if len(order) < 2:
        raise MedlearnError(f"Otsu needs at least two classes, got order {order}")
    values = smoothed_channel(image, sigma_mm, channel)
    dtype = _label_dtype(order)
    if float(values.max() - values.min()) <= 0:
        return np.zeros(values.shape, dtype=dtype)
    try:
        if len(order) == 2:
            thresholds = np.array([threshold_otsu(values)], dtype=np.float64)
        else:
            thresholds = np.asarray(threshold_multiotsu(values, classes=len(order)), dtype=np.float64)
    except ValueError:  # too few distinct intensities for this many classes
        return np.zeros(values.shape, dtype=dtype)
    positions = np.searchsorted(thresholds, values, side="left")  # skimage's convention: above means > threshold
    return np.asarray(order, dtype=dtype)[positions]


def smoothed_channel(image: MedicalImage, sigma_mm: float, channel: int | None) -> np.ndarray:
    """The spatial float32 array the thresholds apply to: one channel (``None``: the mean of all channels),
    smoothed by a Gaussian of ``sigma_mm`` millimetres (per-axis voxel sigma from the image's spacing)."""
    array = image.array
    if channel is not None and not 0 <= channel < image.channels:
        raise MedlearnError(f"the baseline uses channel {channel}, this image has {image.channels}", image.source)
    values = array.mean(axis=0, dtype=np.float32) if channel is None else array[channel].astype(np.float32)
    if not np.isfinite(values).all():
        raise NonFiniteImageError("image holds NaN or infinite values", image.source)
    if sigma_mm > 0:
        sigma = [sigma_mm / float(s) for s in image.spacing]
        values = ndimage.gaussian_filter(values, sigma, mode="nearest")
    return values


def _channel_words(channel: int | None) -> str:
    return ", mean of the channels" if channel is None else (f", channel {channel}" if channel else "")


def _label_dtype(labels: Sequence[int]) -> np.dtype:
    low, high = min(labels), max(labels)
    return np.dtype(np.uint8) if low >= 0 and high < 256 else np.result_type(np.min_scalar_type(low), np.int32)


def _prepare_case(
    image: MedicalImage, label_map: np.ndarray, labels: tuple[int, ...], cap: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class indices of the counted voxels (all, or a random ``cap`` per class) with weights back to true counts."""
    label_map = np.asarray(label_map)
    if label_map.ndim == image.array.ndim and label_map.shape[0] == 1:
        label_map = label_map[0]
    if tuple(label_map.shape) != image.spatial_shape:
        raise MedlearnError(
            f"label map of shape {label_map.shape} for an image of spatial shape {image.spatial_shape}", image.source
        )
    values = label_map.ravel()
    if not np.issubdtype(values.dtype, np.integer):
        rounded = np.rint(values)
        if not np.allclose(values, rounded):
            raise MedlearnError("label map holds non-integer values", image.source)
        values = rounded.astype(np.int64)
    present = np.unique(values)
    unknown = sorted(set(present.tolist()) - set(labels))
    if unknown:
        raise MedlearnError(f"label map holds labels {unknown} outside {list(labels)}", image.source)
    indices, classes, weights = [], [], []
    for k, label in enumerate(labels):
        if label not in present:
            continue
        where = np.flatnonzero(values == label)
        weight = 1.0
        if where.size > cap:
            weight = where.size / cap
            where = np.sort(rng.choice(where, cap, replace=False))
        indices.append(where)
        classes.append(np.full(where.size, k, dtype=np.int64))
        weights.append(np.full(where.size, weight))
    return np.concatenate(indices), np.concatenate(classes), np.concatenate(weights)


def _candidates(values: np.ndarray, count: int) -> np.ndarray:
    """Sorted unique candidate thresholds: quantiles (dense where the data are) and an even grid (across gaps)."""
    half = max(2, count // 2)
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, half))
    low, high = np.quantile(values, [0.001, 0.999])
    even = np.linspace(low, high, half)
    return np.unique(np.concatenate([quantiles, even]).astype(np.float64))


def _fit_thresholds(
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    labels: tuple[int, ...],
    foreground: np.ndarray,
    count: int,
) -> tuple[float, tuple[int, ...], tuple[float, ...]] | None:
    """Best (mean training Dice, class order, thresholds) for one smoothing and channel, or None (one class)."""
    k = len(labels)
    candidates = _candidates(np.concatenate([v for v, _, _ in samples]), count)
    b = len(candidates)
    # cum[case, class, m]: weighted voxels below threshold index m (0: -inf, m in 1..b: candidates[m-1], b+1: +inf)
    cum = np.zeros((len(samples), k, b + 2))
    for i, (values, classes, weights) in enumerate(samples):
        bins = np.searchsorted(candidates, values, side="right")  # voxels with bins <= j lie below candidates[j]
        hist = np.bincount(classes * (b + 1) + bins, weights=weights, minlength=k * (b + 1)).reshape(k, b + 1)
        cum[i, :, 1:] = np.cumsum(hist, axis=1)
    totals = cum[:, :, -1].sum(axis=0)
    present = [c for c in range(k) if totals[c] > 0]
    if len(present) < 2:
        return None
    pooled = cum.sum(axis=0)
    medians = {c: int(np.searchsorted(pooled[c], totals[c] / 2)) for c in present}
    by_median = tuple(sorted(present, key=lambda c: (medians[c], c)))
    orders = [by_median, by_median[::-1]] if len(present) == 2 else [by_median]
    best = None
    for order in orders:
        start = [medians[c] for c in order]
        bounds = np.array([0, *sorted((a + b_) // 2 for a, b_ in zip(start[:-1], start[1:], strict=True)), b + 1])
        bounds[1:-1] = np.clip(bounds[1:-1], 1, b)
        score, bounds = _coordinate_ascent(cum, order, bounds, foreground)
        if best is None or score > best[0] + _TIE:
            best = (score, order, bounds)
    score, order, bounds = best
    thresholds = tuple(float(candidates[m - 1]) for m in bounds[1:-1])
    return score, tuple(labels[c] for c in order), thresholds


def _coordinate_ascent(
    cum: np.ndarray, order: tuple[int, ...], bounds: np.ndarray, foreground: np.ndarray, sweeps: int = 20
) -> tuple[float, np.ndarray]:
    """Optimise each threshold index in turn over its whole allowed range until none moves."""
    b = cum.shape[2] - 2
    score = float(_mean_dice(cum, order, bounds[:, None], foreground)[0])
    for _ in range(sweeps):
        moved = False
        for p in range(1, len(order)):
            trial = np.arange(max(1, bounds[p - 1]), min(b, bounds[p + 1]) + 1)
            if trial.size == 0:
                continue
            grid = np.repeat(bounds[:, None], trial.size, axis=1)
            grid[p] = trial
            scores = _mean_dice(cum, order, grid, foreground)
            top = float(np.max(scores))
            if top < score - _TIE:  # cannot happen (the current index is a trial); guards rounding
                continue
            good = scores >= top - _TIE
            first = int(np.argmax(good))
            last = first + int(np.argmin(np.append(good[first:], False)))  # end of the first optimal plateau
            bounds = bounds.copy()
            bounds[p] = trial[(first + last - 1) // 2]  # middle of the plateau, also when the score ties
            moved = moved or top > score + _TIE
            score = max(score, top)
        if not moved:
            break
    return score, bounds


def _mean_dice(cum: np.ndarray, order: tuple[int, ...], grid: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Mean over cases of the mean foreground Dice for each column of ``grid`` (``len(order) + 1`` bound indices)."""
    totals = cum[:, :, -1]  # (cases, classes)
    every = cum.sum(axis=1)  # (cases, b + 2): all classes together
    dice_sum = np.zeros((cum.shape[0], grid.shape[1]))
    dice_count = np.zeros_like(dice_sum)
    for position, c in enumerate(order):
        if not foreground[c]:
            continue
        low, high = grid[position], grid[position + 1]
        hit = cum[:, c, high] - cum[:, c, low]
        predicted = every[:, high] - every[:, low]
        denominator = predicted + totals[:, c : c + 1]
        valid = denominator > 0
        dice_sum += np.where(valid, 2 * hit / np.where(valid, denominator, 1.0), 0.0)
        dice_count += valid
    # a foreground class absent from the order (no training voxel) is never predicted: it adds no Dice term
    per_case = np.where(dice_count > 0, dice_sum / np.maximum(dice_count, 1), np.nan)
    scored = np.isfinite(per_case)
    counts = scored.sum(axis=0)
    return np.where(counts > 0, np.where(scored, per_case, 0.0).sum(axis=0) / np.maximum(counts, 1), -1.0)
