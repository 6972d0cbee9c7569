"""Which intensity normalisation a dataset needs, chosen from its fingerprint, with the reason.

nnU-Net z-scores every non-CT image by its own mean and standard deviation. That is right when
acquisitions have arbitrary, differing scales (MR from several scanners), and wrong when they share
one scale and the share of foreground varies: an image that is mostly background is stretched until
its noise looks like foreground, and the absolute intensity that separates structure from background
(what a simple threshold relies on) is thrown away. So the planner measures, per training case, the
storage type, the foreground share, the median intensities of foreground and background and the
statistics a per-image z-score would use, and picks:

- ``ct``: CT in Hounsfield units, one physical scale: clip to the foreground's 0.5-99.5 percentiles and
  z-score with the foreground mean/std (nnU-Net's CT scheme);
- ``zscore`` (per image and channel, over the non-zero voxels when zeros mark outside the body) when the
  scales certainly differ (different storage types or modalities), or when intensity separates foreground
  from background across the cases better after a per-image z-score than on their stored scale (a gain
  that differs between acquisitions);
- ``dataset`` otherwise: one fixed clip + z-score per channel, learned on the training cases
  (0.5-99.5 percentiles and mean/std of a sample drawn equally from every case's foreground and
  background, so neither the foreground share nor a large case dominates). This is the choice when the
  cases share one scale, and the one a varying foreground share calls for: there, the per-image z-score
  stretches mostly-background cases and no longer lets one intensity separate structure from background.

"Separates" is measured the way a user's simplest baseline works: the best single global intensity
threshold over all training cases (either polarity, any channel), scored by its mean Dice over the cases,
on the stored scale and after each case's own z-score. Both candidates are affine maps per case, so the
per-case foreground and background quantiles the fingerprint keeps are enough to score them. Ties
(within 0.01 Dice) keep the stored scale. Where intensity alone hardly separates the structure (a lesion
in tissue of the same brightness: best mean Dice below 0.5 either way) the test says nothing, and the
agreement of the cases' foreground and background median levels decides instead (their spread across
cases over the typical contrast, as stored and after per-image z-scores). With a single training case
there is nothing to compare: MR gets the z-score (no fixed scale across scanners), anything else the
dataset scheme.

``--set normalization=NAME`` overrides the choice; the plan records the choice and its reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.io.intensity import NORMALIZATION_SCHEMES

SCHEMES = NORMALIZATION_SCHEMES
#: Foreground shares that differ by this factor (or a case without foreground) "vary a lot".
SHARE_VARIATION = 4.0
#: Percent levels of the per-case foreground/background quantiles the fingerprint keeps.
QUANTILES = np.linspace(0.0, 100.0, 41)
#: Mean-Dice margin by which a per-image z-score must separate better to be chosen over the stored scale ...
SEPARATION_TOLERANCE = 0.01
#: ... a test that says something only when one of them separates at least this well.
INFORMATIVE_SEPARATION = 0.5
#: Below this median share of non-zero voxels, z-scores use the non-zero voxels only (nnU-Net's rule).
NONZERO_MASK_SHARE = 0.75


@dataclass
class CaseIntensity:
    """What one training case contributes to the choice (medians per channel; None without foreground)."""

    dtype: str
    modality: str
    foreground_share: float
    foreground_median: list[float] | None
    background_median: list[float]
    nonzero_fraction: float = 1.0
    #: Quantiles (:data:`QUANTILES` percent) per channel of the foreground (None without) and the background.
    foreground_quantiles: list[list[float]] | None = None
    background_quantiles: list[list[float]] | None = None
    #: What a per-image z-score would use, per channel: over all voxels and over the non-zero ones.
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    nonzero_mean: list[float] = field(default_factory=list)
    nonzero_std: list[float] = field(default_factory=list)


@dataclass
class NormalizationChoice:
    """The scheme, its parameters (what prediction re-applies), why it was chosen, and a caveat if any."""

    scheme: str
    params: dict = field(default_factory=dict)
    reason: str = ""
    warning: str | None = None


def check_scheme(name: str) -> str:
    """``name`` if it is a known scheme, else an error listing the valid ones."""
    if name not in SCHEMES:
        raise MedlearnError(f"unknown normalization {name!r}; choose one of {', '.join(SCHEMES)}")
    return name


def choose_normalization(
    cases: Sequence[CaseIntensity],
    dataset_scale: dict[str, list[float]],
    foreground_stats: dict[str, float],
    *,
    forced: str | None = None,
    nonzero_scale: dict[str, list[float]] | None = None,
) -> NormalizationChoice:
    """The scheme for training cases measured as ``cases``; ``dataset_scale`` holds the per-channel clip and
    mean/std of the pooled sample (the ``dataset`` parameters), ``nonzero_scale`` the same over non-zero voxels
    (used instead, background kept at 0, when a zero background fills much of the images), ``foreground_stats``
    the pooled foreground's (the ``ct`` parameters). ``forced`` (a user's override) wins, and the reason says what
    the data suggested."""
    if not cases:
        raise MedlearnError("no training cases to choose a normalisation from")
    choice = _overridden(_suggest(cases), forced, check_scheme)
    if choice.scheme == "dataset" and nonzero_scale and _zero_background(cases):
        choice.params = {**{key: [float(v) for v in nonzero_scale[key]] for key in DATASET_KEYS}, "nonzero": True}
        share = 1.0 - float(np.median([c.nonzero_fraction for c in cases]))
        choice.reason += (
            f"; a zero background fills {_percent(share)} of the images (median): its statistics come from the "
            "non-zero voxels and it stays 0"
        )
        return choice
    choice.params = _parameters(choice.scheme, cases, dataset_scale, foreground_stats)
    return choice


#: The parameters of the ``dataset`` scheme.
DATASET_KEYS = ("clip_low", "clip_high", "mean", "std")


def _zero_background(cases: Sequence[CaseIntensity]) -> bool:
    """Exact zeros fill so much of the images that they are padding, not signal (as nnU-Net's mask-for-norm)."""
    return float(np.median([c.nonzero_fraction for c in cases])) < NONZERO_MASK_SHARE


def _overridden(suggested: NormalizationChoice, forced: str | None, check: Callable[[str], str]) -> NormalizationChoice:
    """The user's ``forced`` scheme (checked), its reason keeping what the data suggested; else the suggestion."""
    if forced is None or forced == suggested.scheme:
        return suggested
    return NormalizationChoice(
        check(forced), reason=f"set by the user (the data suggested {suggested.scheme}: {suggested.reason})"
    )


def _suggest(cases: Sequence[CaseIntensity]) -> NormalizationChoice:
    modalities = sorted({c.modality for c in cases})
    if modalities == ["CT"]:
        return NormalizationChoice("ct", reason="CT intensities are Hounsfield units, one physical scale")
    storage = sorted({c.dtype for c in cases})
    varies, share_text = _share_variation(cases)
    share_clause = f"; the foreground share varies {share_text}" if varies else ""
    if len(storage) > 1 or len(modalities) > 1:
        what = f"stored as {' and '.join(storage)}" if len(storage) > 1 else f"modalities {', '.join(modalities)}"
        warning = (
            f"the foreground share also varies ({share_text}); images with little foreground may be stretched "
            "by their own z-score (try --set normalization=dataset if the files share one scale after all)"
            if varies
            else None
        )
        return NormalizationChoice("zscore", reason=f"the cases' intensity scales differ ({what})", warning=warning)
    with_foreground = [c for c in cases if c.foreground_quantiles is not None]
    if len(with_foreground) < 2:
        if modalities == ["MR"]:
            return NormalizationChoice("zscore", reason="one training case with foreground, MR: no fixed scale")
        return NormalizationChoice(
            "dataset", reason=f"one training case with foreground ({storage[0]}): its intensity scale is kept"
        )
    stored = threshold_separation(cases, zscored=False)
    per_image = threshold_separation(cases, zscored=True)
    comparison = (
        f"one global intensity threshold separates foreground from background with mean Dice {stored:.2f} "
        f"on the stored scale, {per_image:.2f} after per-image z-scores"
    )
    keep_scale = per_image <= stored + SEPARATION_TOLERANCE
    if max(stored, per_image) < INFORMATIVE_SEPARATION:
        stored, per_image = _level_spread(with_foreground, zscored=False), _level_spread(with_foreground, zscored=True)
        comparison = (
            f"intensity alone hardly separates the structure, and the cases' foreground/background levels spread "
            f"{stored:.2f} of the contrast as stored, {per_image:.2f} after per-image z-scores"
        )
        keep_scale = stored <= per_image
    if keep_scale:
        return NormalizationChoice(
            "dataset",
            reason=f"the {len(cases)} training cases share one intensity scale ({storage[0]}; {comparison})"
            f"{share_clause}: one fixed clip + z-score keeps the intensities that separate foreground from background",
        )
    return NormalizationChoice(
        "zscore", reason=f"the cases' intensity scales differ ({comparison}): each image is z-scored on its own"
    )


def threshold_separation(cases: Sequence[CaseIntensity], *, zscored: bool) -> float:
    """Mean Dice over ``cases`` of the best single global threshold (best channel, either polarity), on the
    stored scale or after each case's own z-score, from the cases' foreground/background quantiles (a case that is
    all foreground says nothing about where background lies and is left out)."""
    nonzero = float(np.median([c.nonzero_fraction for c in cases])) < NONZERO_MASK_SHARE
    cases = [c for c in cases if c.background_quantiles is not None]
    if not cases:
        return 0.0
    channels = len(cases[0].background_quantiles)
    best = 0.0
    for channel in range(channels):
        fg, bg, share = [], [], []
        for case in cases:
            offset, scale = 0.0, 1.0
            if zscored:
                mean, std = (case.nonzero_mean, case.nonzero_std) if nonzero else (case.mean, case.std)
                offset, scale = mean[channel], std[channel] if std[channel] > 0 else 1.0
            background = (np.asarray(case.background_quantiles[channel]) - offset) / scale
            foreground = (
                (np.asarray(case.foreground_quantiles[channel]) - offset) / scale
                if case.foreground_quantiles is not None
                else None
            )
            fg.append(foreground)
            bg.append(background)
            share.append(case.foreground_share)
        best = max(best, _best_threshold_dice(fg, bg, share))
    return best


def _best_threshold_dice(fg: list[np.ndarray | None], bg: list[np.ndarray], share: list[float]) -> float:
    """Mean Dice of the best threshold (and polarity) for cases given as quantile arrays (``QUANTILES``)."""
    values = np.concatenate([q for q in (*fg, *bg) if q is not None])
    candidates = np.unique(np.percentile(values, np.linspace(0, 100, 257)))
    scores = []
    for polarity in (1.0, -1.0):
        dice = np.zeros(len(candidates))
        for foreground, background, fraction in zip(fg, bg, share, strict=True):
            above_bg = _share_above(polarity * background, polarity * candidates)
            if foreground is None:  # an empty truth: any foreground predicted scores 0, none scores 1 (both empty)
                dice += (above_bg == 0).astype(float)
                continue
            above_fg = _share_above(polarity * foreground, polarity * candidates)
            true_positive = fraction * above_fg
            predicted = true_positive + (1.0 - fraction) * above_bg
            dice += 2 * true_positive / np.maximum(predicted + fraction, 1e-12)
        scores.append(float(dice.max()) / len(share))
    return max(scores)


def _level_spread(cases: Sequence[CaseIntensity], *, zscored: bool) -> float:
    """Spread across cases of the foreground and background medians over their typical contrast (worst channel),
    on the stored scale or after each case's own z-score."""
    foreground = np.array([c.foreground_median for c in cases], dtype=float)  # (cases, channels)
    background = np.array([c.background_median for c in cases], dtype=float)
    if zscored:
        nonzero = float(np.median([c.nonzero_fraction for c in cases])) < NONZERO_MASK_SHARE
        mean = np.array([c.nonzero_mean if nonzero else c.mean for c in cases], dtype=float)
        std = np.array([c.nonzero_std if nonzero else c.std for c in cases], dtype=float)
        std = np.where(std > 0, std, 1.0)
        foreground, background = (foreground - mean) / std, (background - mean) / std
    contrast = np.median(np.abs(foreground - background), axis=0)
    if np.any(contrast <= 0):
        return math.inf
    return float(np.max((_range(foreground) + _range(background)) / 2 / contrast))


def _share_above(quantiles: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Share of a distribution above each threshold, from its quantiles at :data:`QUANTILES` (a negated
    distribution's quantiles, sorted, sit at the same symmetric levels)."""
    return 1.0 - np.interp(thresholds, np.sort(quantiles), QUANTILES / 100.0)


def _range(levels: np.ndarray) -> np.ndarray:
    """10th to 90th percentile per channel, rescaled to a range (robust to one odd case among many)."""
    low, high = np.percentile(levels, [10, 90], axis=0)
    return (high - low) / 0.8


def _share_variation(cases: Sequence[CaseIntensity]) -> tuple[bool, str]:
    shares = np.array([c.foreground_share for c in cases], dtype=float)
    low, high = float(shares.min()), float(shares.max())
    text = f"{_percent(low)}-{_percent(high)} of the voxels"
    if high <= 0:
        return False, text
    if low <= 0:
        return True, text + ", some cases without foreground"
    return high / low >= SHARE_VARIATION, f"{high / low:.0f}-fold, {text}"


def _parameters(
    scheme: str,
    cases: Sequence[CaseIntensity],
    dataset_scale: dict[str, list[float]],
    foreground_stats: dict[str, float],
) -> dict:
    if scheme == "ct":
        return {
            "clip_low": foreground_stats["percentile_00_5"],
            "clip_high": foreground_stats["percentile_99_5"],
            "mean": foreground_stats["mean"],
            "std": max(foreground_stats["std"], 1e-6),
        }
    if scheme == "dataset":
        return {key: [float(v) for v in dataset_scale[key]] for key in DATASET_KEYS}
    nonzero = float(np.median([c.nonzero_fraction for c in cases])) < NONZERO_MASK_SHARE
    return {"nonzero": True} if nonzero else {}


def pooled_scale(samples: Sequence[np.ndarray]) -> dict[str, list[float]]:
    """Per-channel clip (0.5-99.5 percentiles) and mean/std after clipping of pooled ``(C, n)`` samples."""
    pooled = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples], axis=1)
    low, high = np.percentile(pooled, [0.5, 99.5], axis=1)
    clipped = np.clip(pooled, low[:, None], high[:, None])
    std = clipped.std(axis=1)
    return {
        "clip_low": low.tolist(),
        "clip_high": high.tolist(),
        "mean": clipped.mean(axis=1).tolist(),
        "std": np.where(std > 0, std, 1.0).tolist(),
    }


def _percent(share: float) -> str:
    return f"{100 * share:.2g}%" if share < 0.1 else f"{100 * share:.0f}%"


# -- images without masks (classification, enhancement) ------------------------------------------------------
#: Per-image schemes of tasks without masks: each image by its own statistics (the modality's usual scheme).
IMAGE_SCHEMES: tuple[str, ...] = ("image", "dataset")
#: Without masks the background is what most pixels show: images count as one scale when their dark (2nd
#: percentile) and median levels spread by at most this share of the typical contrast (98th - 2nd percentile).
#: Bright levels are not compared: they move with the content (a lesion or not), not with the acquisition.
MAX_BACKGROUND_SPREAD = 0.25
#: Images measured to choose (a seeded random subset of the training images: enough to see the spread).
IMAGES_MEASURED = 300


@dataclass
class ImageIntensity:
    """One training image's storage type, modality and 2nd/50th/98th percentiles per channel."""

    dtype: str
    modality: str
    dark: list[float]
    median: list[float]
    bright: list[float]

    @classmethod
    def measure(cls, array: np.ndarray, modality: str, dtype: str) -> ImageIntensity:
        """Levels of a ``(C, *spatial)`` array as stored (before any normalisation)."""
        flat = np.asarray(array, dtype=np.float64).reshape(array.shape[0], -1)
        dark, median, bright = np.percentile(flat, [2, 50, 98], axis=1)
        return cls(str(dtype), modality.upper(), dark.tolist(), median.tolist(), bright.tolist())


def check_image_scheme(name: str) -> str:
    """``name`` if it is a known scheme for images without masks, else an error listing the valid ones."""
    if name not in IMAGE_SCHEMES:
        raise MedlearnError(f"unknown normalization {name!r}; choose one of {', '.join(IMAGE_SCHEMES)}")
    return name


def choose_image_normalization(
    images: Sequence[ImageIntensity], samples: Sequence[np.ndarray], *, forced: str | None = None
) -> NormalizationChoice:
    """The same rule as for segmentation, for images without masks: one fixed clip + z-score learned on the
    training images (``dataset``, parameters from the pooled ``(C, n)`` pixel ``samples``) when they are stored
    alike and their background (dark and median) levels agree, each image's own scheme (``image``) when their
    scales differ."""
    if not images:
        raise MedlearnError("no training images to choose a normalisation from")
    choice = _overridden(_suggest_for_images(images), forced, check_image_scheme)
    choice.params = pooled_scale(samples) if choice.scheme == "dataset" else {}
    return choice


def _suggest_for_images(images: Sequence[ImageIntensity]) -> NormalizationChoice:
    storage = sorted({i.dtype for i in images})
    modalities = sorted({i.modality for i in images})
    if len(storage) > 1 or len(modalities) > 1:
        what = f"stored as {' and '.join(storage)}" if len(storage) > 1 else f"modalities {', '.join(modalities)}"
        return NormalizationChoice("image", reason=f"the images' intensity scales differ ({what})")
    dark = np.array([i.dark for i in images], dtype=float)
    median = np.array([i.median for i in images], dtype=float)
    contrast = np.median(np.array([i.bright for i in images], dtype=float) - dark, axis=0)
    if len(images) < 2 or np.any(contrast <= 0):
        return NormalizationChoice("image", reason="too few images, or no contrast, to compare their scales")
    dark_spread = float(np.max(_range(dark) / contrast))
    median_spread = float(np.max(_range(median) / contrast))
    levels = (
        f"dark levels spread {dark_spread:.0%} and median levels {median_spread:.0%} of the typical contrast "
        f"over {len(images)} training images"
    )
    if max(dark_spread, median_spread) <= MAX_BACKGROUND_SPREAD:
        return NormalizationChoice(
            "dataset",
            reason=f"the images share one intensity scale ({storage[0]}, {levels}): one fixed clip + z-score "
            "keeps absolute intensities that a per-image scaling would throw away",
        )
    return NormalizationChoice("image", reason=f"the images' intensity scales differ ({levels})")
