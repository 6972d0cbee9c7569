"""Detection metrics as the field reports them: FROC, its CPM (LUNA16, CAMELYON16), and average precision.

A detector outputs points with scores; an image holds ground-truth objects (:class:`Targets`).
:func:`match_detections` decides, for one image, which detection hits which object:

- a detection *hits* target ``t`` when it lies inside ``t``'s object in the instance map (when one is given) or
  within ``radii_mm[t]`` of its centre, distances in millimetres (``spacing``), so a 3 mm nodule on 2.5 mm slices is
  judged by its physical size, not its voxel count;
- a detection hitting several targets counts for the nearest one (mm to the centre);
- each target scores the best of the detections that hit it. Its other hits are *ignored*: neither true nor false
  positives, as LUNA16's evaluation counts them. A detector placing three candidates on one large nodule has found
  it once; counting the two others as false positives would penalise detectors on big objects for no error, and
  counting them as true positives would let them inflate the sensitivity beyond one object.

:func:`froc_curve` pools the images: at every score threshold, the fraction of all targets found against the mean
number of false positives per image (images without targets count in that mean: a detector must stay quiet on
healthy scans). :func:`competition_performance_metric` (CPM) is the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and
8 false positives per image (LUNA16's operating points), read off the curve by linear interpolation exactly as
``monai.metrics.compute_froc_score`` (the CAMELYON16 code) does. We compute the curve ourselves rather than with
``monai.metrics.compute_froc_curve_data``, which skips the lowest threshold (see :func:`froc_curve`).

:func:`average_precision` ranks the same detections (best hits and false positives, ignored hits left out); its
recall counts all targets, so a target no detection reaches caps the achievable recall. :func:`summarize_detection`
adds percentile-bootstrap intervals that resample whole images (the detections of one image are not independent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from monai.metrics import compute_froc_score

from medlearn.errors import MedlearnError
from medlearn.evaluation.classification import to_jsonable

#: LUNA16's operating points (false positives per image); the CPM is the mean sensitivity at them.
LUNA16_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Fewer usable bootstrap resamples than this give an interval of (NaN, NaN), as in the classification metrics.
MIN_RESAMPLES = 10


@dataclass(frozen=True)
class Targets:
    """Ground-truth objects of one image on its voxel grid."""

    centres: np.ndarray  # (T, d) voxel coordinates, float
    radii_mm: np.ndarray  # (T,) hit radius in mm
    spacing: tuple[float, ...]  # mm per voxel along each axis
    instance_map: np.ndarray | None = None  # (*spatial) ints: 0 background, t + 1 = voxels of target t
    labels: tuple[str, ...] = ()  # optional per target

    def __post_init__(self) -> None:
        spacing = tuple(float(s) for s in self.spacing)
        d = len(spacing)
        if d == 0 or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise MedlearnError(f"target spacing must be positive mm per axis, got {self.spacing}")
        centres = np.asarray(self.centres, dtype=np.float64)
        if centres.size == 0:
            centres = centres.reshape(0, d)
        if centres.ndim != 2 or centres.shape[1] != d:
            raise MedlearnError(f"target centres must have shape (T, {d}) for spacing {spacing}, got {centres.shape}")
        radii = np.asarray(self.radii_mm, dtype=np.float64).reshape(-1)
        if radii.shape != (len(centres),):
            raise MedlearnError(f"{len(centres)} target centres but {radii.size} radii")
        if not (np.isfinite(centres).all() and np.isfinite(radii).all()) or (radii < 0).any():
            raise MedlearnError("target centres and radii must be finite, radii >= 0")
        instance_map = self.instance_map
        if instance_map is not None:
            instance_map = np.asarray(instance_map)
            if instance_map.ndim != d:
                raise MedlearnError(f"instance map of shape {instance_map.shape} for {d}-dimensional targets")
            if instance_map.dtype == bool:
                instance_map = instance_map.astype(np.int64)
            elif not np.issubdtype(instance_map.dtype, np.integer):
                rounded = np.rint(instance_map)
                if not np.array_equal(rounded, instance_map):
                    raise MedlearnError("instance map holds non-integer values")
                instance_map = rounded.astype(np.int64)
            if instance_map.size and (instance_map.min() < 0 or instance_map.max() > len(centres)):
                raise MedlearnError(
                    f"instance map values must be 0..{len(centres)} (0 background, t + 1 target t), "
                    f"got {instance_map.min()}..{instance_map.max()}"
                )
        labels = tuple(str(v) for v in self.labels)
        if labels and len(labels) != len(centres):
            raise MedlearnError(f"{len(labels)} target labels for {len(centres)} targets")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "centres", centres)
        object.__setattr__(self, "radii_mm", radii)
        object.__setattr__(self, "instance_map", instance_map)
        object.__setattr__(self, "labels", labels)

    @property
    def ndim(self) -> int:
        """Spatial dimensions."""
        return len(self.spacing)

    def __len__(self) -> int:
        return len(self.centres)

    @classmethod
    def from_instance_map(
        cls, instance_map: np.ndarray, spacing: Sequence[float], labels: Sequence[str] = ()
    ) -> Targets:
        """Targets from an instance map alone: centre of mass of each object ``t + 1`` and, as hit radius, the
        radius of the ball of the object's volume in mm (so a detection near a small object's edge still counts).
        Object numbers without voxels get their centre at the origin and radius 0 (never hit by distance)."""
        instance_map = np.asarray(instance_map)
        count = int(instance_map.max()) if instance_map.size else 0
        d = instance_map.ndim
        centres = np.zeros((count, d))
        radii = np.zeros(count)
        if count:
            from scipy import ndimage

            index = np.arange(1, count + 1)
            sizes = ndimage.sum_labels(np.ones(instance_map.shape), instance_map, index)
            present = sizes > 0
            centres[present] = np.asarray(
                ndimage.center_of_mass(np.ones(instance_map.shape), instance_map, index[present])
            )
            volume = sizes * float(np.prod(spacing))
            radii = (volume / _unit_ball_volume(d)) ** (1.0 / d)
        return cls(centres, radii, tuple(spacing), instance_map, tuple(labels))


@dataclass
class ImageMatch:
    """The detections of one image sorted into hits (per target), false positives and ignored duplicates."""

    target_scores: np.ndarray  # (T,) best score of the detections that hit target t; NaN if missed
    target_distance_mm: np.ndarray  # (T,) distance (mm) between target t's centre and its best hit; NaN if missed
    false_positive_scores: np.ndarray  # (F,) scores of the detections that hit no target
    ignored: int  # further hits on an already-hit target (neither TP nor FP, as LUNA16 counts them)
    name: str = ""

    @property
    def detected(self) -> int:
        """Targets hit by at least one detection (at the lowest threshold)."""
        return int(np.isfinite(self.target_scores).sum())


def match_detections(points: np.ndarray, scores: np.ndarray, targets: Targets, name: str = "") -> ImageMatch:
    """Sort one image's detections (``points`` (N, d) voxel coordinates, possibly fractional; ``scores`` (N,))
    into target hits, false positives and ignored duplicates (see the module docstring for the rules)."""
    d = targets.ndim
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        points = points.reshape(0, d)
    if points.ndim != 2 or points.shape[1] != d:
        raise MedlearnError(f"detections must have shape (N, {d}) for {d}-dimensional targets, got {points.shape}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) != len(points):
        raise MedlearnError(f"{len(points)} detections but scores of shape {scores.shape}")
    if not (np.isfinite(points).all() and np.isfinite(scores).all()):
        raise MedlearnError("detection coordinates and scores must be finite")
    count = len(targets)
    target_scores = np.full(count, np.nan)
    target_distance = np.full(count, np.nan)
    if count == 0 or len(points) == 0:
        return ImageMatch(target_scores, target_distance, scores.copy(), 0, name)
    spacing = np.asarray(targets.spacing)
    distance = np.linalg.norm((points[:, None, :] - targets.centres[None, :, :]) * spacing, axis=2)  # (N, T) mm
    hits = distance <= targets.radii_mm[None, :]
    if targets.instance_map is not None:
        shape = np.asarray(targets.instance_map.shape)
        voxels = np.clip(np.rint(points).astype(np.int64), 0, shape - 1)
        inside = targets.instance_map[tuple(voxels.T)].astype(np.int64)
        which = np.flatnonzero(inside > 0)
        hits[which, inside[which] - 1] = True
    hit_any = hits.any(axis=1)
    assigned = np.argmin(np.where(hits, distance, np.inf), axis=1)  # nearest hit target (mm)
    rows = np.flatnonzero(hit_any)
    chosen = assigned[rows]
    to_centre = distance[rows, chosen]
    # best hit per target: highest score, then the nearer one
    order = np.lexsort((to_centre, -scores[rows], chosen))
    first = np.unique(chosen[order], return_index=True)[1]
    best = order[first]
    target_scores[chosen[best]] = scores[rows][best]
    target_distance[chosen[best]] = to_centre[best]
    ignored = len(rows) - len(best)
    return ImageMatch(target_scores, target_distance, scores[~hit_any].copy(), int(ignored), name)


@dataclass(frozen=True)
class FROC:
    """Free-response ROC: one operating point per score threshold, false positives per image ascending."""

    fp_per_image: np.ndarray  # ascending
    sensitivity: np.ndarray
    thresholds: np.ndarray  # the score threshold of each operating point


@dataclass
class _Pooled:
    """All images' counted detections (best hits and false positives), sorted by score descending."""

    scores: np.ndarray
    is_tp: np.ndarray
    image: np.ndarray  # index of the image each detection comes from
    ends: np.ndarray  # last index of each group of equal scores (one operating point each)
    targets_per_image: np.ndarray
    images: int
    distances: np.ndarray  # every target's distance to its best hit (NaN: missed)


def _pool(matches: Sequence[ImageMatch]) -> _Pooled:
    if len(matches) == 0:
        raise MedlearnError("no images to evaluate detections on")
    scores, is_tp, image, distances = [], [], [], []
    for i, match in enumerate(matches):
        tp = np.asarray(match.target_scores, dtype=np.float64)
        tp = tp[np.isfinite(tp)]
        fp = np.asarray(match.false_positive_scores, dtype=np.float64).ravel()
        scores += [tp, fp]
        is_tp += [np.ones(len(tp), bool), np.zeros(len(fp), bool)]
        image.append(np.full(len(tp) + len(fp), i))
        distances.append(np.asarray(match.target_distance_mm, dtype=np.float64))
    all_scores = np.concatenate(scores)
    order = np.argsort(-all_scores, kind="stable")
    all_scores = all_scores[order]
    ends = np.flatnonzero(np.append(all_scores[1:] != all_scores[:-1], True)) if len(all_scores) else np.zeros(0, int)
    return _Pooled(
        scores=all_scores,
        is_tp=np.concatenate(is_tp)[order],
        image=np.concatenate(image)[order],
        ends=ends,
        targets_per_image=np.array([len(m.target_scores) for m in matches], dtype=np.float64),
        images=len(matches),
        distances=np.concatenate(distances),
    )


def _counts(pooled: _Pooled, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Cumulative (weighted) true and false positives at each threshold, total targets and images, for image
    ``weights`` (ones: the data as they are; bootstrap counts: a resample)."""
    w = weights[pooled.image]
    tp = np.cumsum(np.where(pooled.is_tp, w, 0.0))[pooled.ends]
    fp = np.cumsum(np.where(pooled.is_tp, 0.0, w))[pooled.ends]
    return tp, fp, float(weights @ pooled.targets_per_image), float(weights.sum())


def _froc(pooled: _Pooled, weights: np.ndarray) -> FROC:
    tp, fp, targets, images = _counts(pooled, weights)
    if len(pooled.ends) == 0:  # no detection at all: the one operating point finds nothing
        return FROC(np.zeros(1), np.array([0.0 if targets > 0 else np.nan]), np.array([np.inf]))
    sensitivity = tp / targets if targets > 0 else np.full(len(tp), np.nan)
    return FROC(fp / images, sensitivity, pooled.scores[pooled.ends].copy())


def _average_precision(pooled: _Pooled, weights: np.ndarray) -> float:
    tp, fp, targets, _ = _counts(pooled, weights)
    if targets <= 0:
        return math.nan
    if len(tp) == 0:
        return 0.0
    gained = np.diff(tp, prepend=0.0) > 0  # thresholds where recall rises (precision is defined there)
    precision = tp[gained] / (tp[gained] + fp[gained])
    recall_step = np.diff(tp, prepend=0.0)[gained] / targets
    return float(np.sum(recall_step * precision))


def froc_curve(matches: Sequence[ImageMatch]) -> FROC:
    """The FROC of the pooled images: one operating point per distinct score among the best hits and false
    positives (threshold ``s`` keeps the detections scoring ``>= s``), from the highest score down to the lowest,
    where every detection is kept. Sensitivity is NaN when there is no target at all.

    Not ``monai.metrics.compute_froc_curve_data``: it loops over ``all_probs[1:]``, skipping the lowest threshold,
    so the operating point keeping every detection is lost. When every target is hit, that is the only point at
    sensitivity 1, and the CPM would never reach 1 (nor count the last target found) however good the detector.
    """
    pooled = _pool(matches)
    return _froc(pooled, np.ones(pooled.images))


def _monai_order(froc: FROC) -> tuple[np.ndarray, np.ndarray]:
    """The curve in the order ``compute_froc_score`` expects: it calls ``np.interp(rates, fps[::-1], sens[::-1])``,
    i.e. it takes false positives per image DESCENDING (as its own curve function, thresholds ascending, gives
    them) and reverses them. Our curve is ascending, so it goes in reversed."""
    fp = np.asarray(froc.fp_per_image, dtype=np.float64)
    sensitivity = np.asarray(froc.sensitivity, dtype=np.float64)
    if fp.ndim != 1 or fp.shape != sensitivity.shape or len(fp) == 0:
        raise MedlearnError(f"a FROC needs matching non-empty 1-D arrays, got {fp.shape} and {sensitivity.shape}")
    if np.any(np.diff(fp) < 0):
        raise MedlearnError("FROC false positives per image must be ascending")
    return fp[::-1], sensitivity[::-1]


def sensitivities_at(froc: FROC, rates: Sequence[float] = LUNA16_FP_RATES) -> list[float]:
    """Sensitivity at each false-positive rate, interpolated linearly on the curve as MONAI / CAMELYON16 do: a rate
    beyond the curve's largest false positives per image takes its last sensitivity, one below its first its first.
    Operating points sharing one false-positive rate all stay on the curve, as in MONAI's own: ``np.interp`` reads
    the last of them (the highest sensitivity) at exactly that rate. (Calls ``compute_froc_score`` with one rate at
    a time, so the CPM is exactly their mean.)"""
    fp, sensitivity = _monai_order(froc)
    return [float(compute_froc_score(fp, sensitivity, (float(rate),))) for rate in rates]


def competition_performance_metric(froc: FROC, rates: Sequence[float] = LUNA16_FP_RATES) -> float:
    """CPM: the mean sensitivity at ``rates`` false positives per image (LUNA16's seven by default)."""
    if len(rates) == 0:
        raise MedlearnError("the CPM needs at least one false-positive rate")
    fp, sensitivity = _monai_order(froc)
    return float(compute_froc_score(fp, sensitivity, tuple(float(rate) for rate in rates)))


def average_precision(matches: Sequence[ImageMatch]) -> float:
    """Area under the precision-recall curve of the pooled detections (best hits and false positives; ignored hits
    left out), recall over all targets so missed targets cap it. All-point and not interpolated, as scikit-learn's
    ``average_precision_score``: the sum over thresholds of (recall gained) x (precision there), tied scores forming
    one threshold. VOC 2010+ and COCO first replace precision by its running maximum from the right, which can only
    raise the value. NaN when there is no target; 0 when there is no detection."""
    pooled = _pool(matches)
    return _average_precision(pooled, np.ones(pooled.images))


def fp_rates_note(rates: Sequence[float] = LUNA16_FP_RATES) -> str:
    """The sentence saying what the FROC figures are."""
    words = ", ".join(_rate_words(rate) for rate in rates)
    luna = "LUNA16's operating points; " if tuple(float(r) for r in rates) == LUNA16_FP_RATES else ""
    return f"sensitivity at {words} false positives per image{', ' if luna else '; '}{luna}CPM is their mean"


def summarize_detection(
    matches: Sequence[ImageMatch],
    *,
    rates: Sequence[float] = LUNA16_FP_RATES,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """JSON-ready summary: CPM and average precision with percentile-bootstrap intervals (images resampled with
    replacement, ``bootstrap`` times, seeded), the FROC at ``rates``, counts and the mean distance of the hits.
    NaN (undefined, e.g. no target) is written as None."""
    if bootstrap < 0:
        raise MedlearnError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    if not 0 < confidence < 1:
        raise MedlearnError(f"confidence must be in (0, 1), got {confidence}")
    rates = tuple(float(rate) for rate in rates)
    pooled = _pool(matches)
    ones = np.ones(pooled.images)
    froc = _froc(pooled, ones)
    cpm = competition_performance_metric(froc, rates)
    ap = _average_precision(pooled, ones)
    cpms, aps = [], []
    rng = np.random.default_rng(seed)
    for _ in range(bootstrap):
        weights = np.bincount(rng.integers(0, pooled.images, pooled.images), minlength=pooled.images).astype(float)
        cpms.append(competition_performance_metric(_froc(pooled, weights), rates))
        aps.append(_average_precision(pooled, weights))
    distances = pooled.distances[np.isfinite(pooled.distances)]
    summary = {
        "cpm": cpm,
        "cpm_ci": _percentile_interval(cpms, confidence),
        "froc": [
            {"fp_per_image": rate, "sensitivity": s}
            for rate, s in zip(rates, sensitivities_at(froc, rates), strict=True)
        ],
        "sensitivity_at_1fp": sensitivities_at(froc, (1.0,))[0],
        "average_precision": ap,
        "average_precision_ci": _percentile_interval(aps, confidence),
        "mean_distance_mm": float(distances.mean()) if len(distances) else math.nan,
        "targets": int(pooled.targets_per_image.sum()),
        "detected": int(sum(m.detected for m in matches)),
        "false_positives": int(sum(len(m.false_positive_scores) for m in matches)),
        "ignored": int(sum(m.ignored for m in matches)),
        "images": pooled.images,
        "ci_level": confidence,
        "n_boot": bootstrap,
        "fp_rates_note": fp_rates_note(rates),
    }
    return to_jsonable(summary)


def _percentile_interval(values: list[float], confidence: float) -> list[float]:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite) < MIN_RESAMPLES:
        return [math.nan, math.nan]
    alpha = 1.0 - confidence
    low, high = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return [float(low), float(high)]


def _rate_words(rate: float) -> str:
    fraction = Fraction(rate).limit_denominator(1024)
    if fraction.denominator == 1:
        return str(fraction.numerator)
    if fraction.numerator == 1 and float(fraction) == rate:
        return f"1/{fraction.denominator}"
    return f"{rate:g}"


def _unit_ball_volume(d: int) -> float:
    return math.pi ** (d / 2) / math.gamma(d / 2 + 1)


__all__ = [
    "FROC",
    "LUNA16_FP_RATES",
    "ImageMatch",
    "Targets",
    "average_precision",
    "competition_performance_metric",
    "fp_rates_note",
    "froc_curve",
    "match_detections",
    "sensitivities_at",
    "summarize_detection",
]
