"""Test-set metrics of a classifier, with percentile-bootstrap confidence intervals.

Point estimates come from scikit-learn. The bootstrap recomputes every metric on resampled case
weights with array operations (no per-resample Python loop over scikit-learn calls), so 1000
resamples of a few hundred cases take a fraction of a second on a laptop CPU.

Conventions: ``probs`` is ``(N, K)`` class probabilities (a 1-D array is read as the positive-class
probability of a binary problem); the prediction is the arg-max class. Binary problems report
sensitivity, specificity, precision and F1 *of the positive class*; multi-class problems report
their macro averages (sensitivity = macro recall). A metric that is undefined for the data (e.g.
sensitivity with no positive case) is NaN, and :func:`to_jsonable` writes it as ``null``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from medlearn.errors import MedlearnError

METRIC_NAMES: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "auc",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
)


def as_probability_matrix(probs: np.ndarray) -> np.ndarray:
    """``(N, K)`` float probabilities; a 1-D positive-class probability becomes ``[1 - p, p]``."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[1] < 2:
        raise MedlearnError(f"class probabilities must have shape (N, K>=2), got {p.shape}")
    if not np.isfinite(p).all():
        raise MedlearnError("class probabilities contain NaN or infinite values")
    return p


def _check(y_true: np.ndarray, probs: np.ndarray, positive: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = as_probability_matrix(probs)
    if len(y) != len(p):
        raise MedlearnError(f"{len(y)} labels but {len(p)} rows of probabilities")
    if len(y) == 0:
        raise MedlearnError("no test cases to evaluate")
    k = p.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise MedlearnError(f"labels must be in 0..{k - 1}, got {y.min()}..{y.max()}")
    if not 0 <= positive < k:
        raise MedlearnError(f"positive class {positive} is not one of the {k} classes")
    return y, p


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` counts: row = true class, column = predicted class (every class present)."""
    return skm.confusion_matrix(np.asarray(y_true).ravel(), np.asarray(y_pred).ravel(), labels=list(range(num_classes)))


def _nan_safe(fn, *args, **kwargs) -> float:
    """``fn(...)`` or NaN when it is undefined (e.g. AUC with one class), without a warning."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            value = float(fn(*args, **kwargs))
    except ValueError:
        return math.nan
    return value


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, positive: int = 1) -> dict[str, float]:
    """Accuracy, balanced accuracy, AUC, sensitivity, specificity, precision, F1 and ``n``."""
    y, p = _check(y_true, probs, positive)
    k = p.shape[1]
    pred = p.argmax(axis=1)
    out: dict[str, float] = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "n": float(len(y)),
    }
    present = np.unique(y)
    # balanced accuracy = mean recall over the classes present in y_true (scikit-learn's definition)
    out["balanced_accuracy"] = float(skm.recall_score(y, pred, labels=present, average="macro", zero_division=np.nan))
    cm = confusion(y, pred, k)
    if k == 2:
        y_pos = (y == positive).astype(int)
        out["auc"] = _nan_safe(skm.roc_auc_score, y_pos, p[:, positive])
        out["sensitivity"] = _ratio(cm[positive, positive], cm[positive].sum())
        negative = 1 - positive
        out["specificity"] = _ratio(cm[negative, negative], cm[negative].sum())
        out["precision"] = float(
            skm.precision_score(y, pred, pos_label=positive, average="binary", zero_division=np.nan)
        )
        out["f1"] = float(skm.f1_score(y, pred, pos_label=positive, average="binary", zero_division=np.nan))
    else:
        out["auc"] = _macro_ovr_auc(y, p)
        out["sensitivity"] = out["balanced_accuracy"]
        out["specificity"] = float(np.nanmean(_per_class_specificity(cm))) if k else math.nan
        out["precision"] = float(skm.precision_score(y, pred, labels=present, average="macro", zero_division=np.nan))
        out["f1"] = float(skm.f1_score(y, pred, labels=present, average="macro", zero_division=np.nan))
    return {name: out[name] for name in (*METRIC_NAMES, "n")}


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def _per_class_specificity(cm: np.ndarray) -> np.ndarray:
    total = cm.sum()
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = total - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), np.nan)


def _macro_ovr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over classes that have both positives and negatives."""
    aucs = [skm.roc_auc_score((y == c).astype(int), p[:, c]) for c in range(p.shape[1]) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(aucs)) if aucs else math.nan


# ----------------------------------------------------------------------------------------------
# Vectorised metrics on bootstrap weights: w[b, i] = how often case i is drawn in resample b.


def _weighted_auc(w: np.ndarray, is_pos: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per weight row (ties count one half); NaN where one class is absent."""
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    ends = np.flatnonzero(np.r_[sorted_score[1:] != sorted_score[:-1], True])  # last index of each tie group
    ws = w[:, order]
    pos = is_pos[order]

    def per_group(weights: np.ndarray) -> np.ndarray:
        at_ends = np.cumsum(weights, axis=1)[:, ends]
        return np.diff(at_ends, axis=1, prepend=0.0)

    wp = per_group(ws * pos)  # (B, G): positive weight in each ascending score group
    wn = per_group(ws * ~pos)
    below = np.cumsum(wn, axis=1) - wn  # negative weight strictly below each group
    pairs = (wp * (below + 0.5 * wn)).sum(axis=1)
    total = wp.sum(axis=1) * wn.sum(axis=1)
    return _div(pairs, total)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _weighted_metrics(w: np.ndarray, y: np.ndarray, p: np.ndarray, positive: int) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRIC_NAMES` for each row of case weights ``w`` (shape ``(B, N)``)."""
    k = p.shape[1]
    pred = p.argmax(axis=1)
    true_1h = np.eye(k)[y]  # (N, K)
    pred_1h = np.eye(k)[pred]
    n = w.sum(axis=1)
    tp = w @ (true_1h * pred_1h)  # (B, K)
    support = w @ true_1h  # true count per class
    predicted = w @ pred_1h
    fp = predicted - tp
    fn = support - tp
    tn = n[:, None] - tp - fp - fn
    recall = _div(tp, support)
    spec = _div(tn, tn + fp)
    prec = _div(tp, predicted)
    f1 = _div(2 * tp, 2 * tp + fp + fn)
    f1 = np.where(support + predicted > 0, f1, np.nan)
    present = support > 0
    with np.errstate(invalid="ignore"):
        macro_recall = np.nanmean(np.where(present, recall, np.nan), axis=1)
        out = {"accuracy": tp.sum(axis=1) / n, "balanced_accuracy": macro_recall}
        if k == 2:
            out["sensitivity"] = recall[:, positive]
            out["specificity"] = spec[:, positive]
            out["precision"] = prec[:, positive]
            out["f1"] = f1[:, positive]
            out["auc"] = _weighted_auc(w, y == positive, p[:, positive])
        else:
            out["sensitivity"] = macro_recall
            out["specificity"] = np.nanmean(spec, axis=1)
            out["precision"] = np.nanmean(np.where(present, prec, np.nan), axis=1)
            out["f1"] = np.nanmean(np.where(present, f1, np.nan), axis=1)
            aucs = np.stack([_weighted_auc(w, y == c, p[:, c]) for c in range(k)], axis=1)
            out["auc"] = np.nanmean(aucs, axis=1)
    return out


def bootstrap_intervals(
    y_true: np.ndarray,
    probs: np.ndarray,
    positive: int = 1,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: Sequence[str] | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap ``(low, high)`` of every metric, resampling cases with replacement, or whole
    ``groups`` (patients, near-duplicate clusters) when given: images of one group are not independent, and
    resampling them one by one gives intervals that are too narrow.

    Resamples where a metric is undefined (e.g. AUC when a resample holds one class only) are
    skipped for that metric; with fewer than 10 usable resamples the interval is ``(nan, nan)``.
    """
    y, p = _check(y_true, probs, positive)
    if n_boot < 1:
        raise MedlearnError(f"n_boot must be positive, got {n_boot}")
    if not 0 < alpha < 1:
        raise MedlearnError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    n = len(y)
    group_of = _group_indices(groups, n)
    units = int(group_of.max()) + 1 if n else 0
    intervals: dict[str, tuple[float, float]] = {}
    collected: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
    chunk = max(1, min(n_boot, 4_000_000 // max(n, units, 1)))  # bound memory of the (B, N) weights
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        draws = rng.integers(0, units, size=(b, units))
        offsets = (np.arange(b)[:, None] * units + draws).ravel()
        unit_weights = np.bincount(offsets, minlength=b * units).reshape(b, units).astype(np.float64)
        w = unit_weights[:, group_of]
        for name, values in _weighted_metrics(w, y, p, positive).items():
            collected[name].append(values)
        done += b
    for name in METRIC_NAMES:
        values = np.concatenate(collected[name])
        values = values[np.isfinite(values)]
        if len(values) < 10:
            intervals[name] = (math.nan, math.nan)
        else:
            low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
            intervals[name] = (float(low), float(high))
    return intervals


#: Proportions whose bootstrap interval collapses to a point at 0% or 100% (every resample agrees).
PROPORTIONS = ("accuracy", "sensitivity", "specificity", "precision")


def boundary_intervals(
    y_true: np.ndarray,
    probs: np.ndarray,
    positive: int = 1,
    alpha: float = 0.05,
    groups: Sequence[str] | None = None,
) -> dict[str, tuple[float, float]]:
    """Clopper-Pearson (exact binomial) intervals of the binary proportions that are exactly 0 or 1, where the
    percentile bootstrap would report a zero-width interval ("100.0 (100.0-100.0)" on 214 negatives). The count is
    of independent units: the cases, or the distinct ``groups`` among them."""
    from scipy.stats import beta

    y, p = _check(y_true, probs, positive)
    if p.shape[1] != 2:
        return {}
    predicted = p.argmax(axis=1) == positive
    actual = y == positive
    group_of = _group_indices(groups, len(y))
    relevant = {
        "accuracy": np.ones(len(y), bool),
        "sensitivity": actual,
        "specificity": ~actual,
        "precision": predicted,
    }
    correct = predicted == actual
    out = {}
    for name, members in relevant.items():
        if not members.any():
            continue
        share = float(correct[members].mean())
        if share not in (0.0, 1.0):
            continue
        units = len(np.unique(group_of[members]))
        successes = units if share == 1.0 else 0
        low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, units - successes + 1))
        high = 1.0 if successes == units else float(beta.ppf(1 - alpha / 2, successes + 1, units - successes))
        out[name] = (low, high)
    return out


def _group_indices(groups: Sequence[str] | None, n: int) -> np.ndarray:
    """Index of each case's group (each case its own group when ``groups`` is None)."""
    if groups is None:
        return np.arange(n)
    if len(groups) != n:
        raise MedlearnError(f"{len(groups)} groups for {n} cases")
    _, index = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return index


def metrics_with_intervals(
    y_true: np.ndarray,
    probs: np.ndarray,
    positive: int = 1,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``{"accuracy": 0.98, "accuracy_ci": [0.97, 0.99], ..., "n": 500}``, ready for :func:`to_jsonable`.

    Intervals resample ``groups`` when given; proportions at exactly 0% or 100% get Clopper-Pearson intervals
    (``ci_method`` names the method per metric)."""
    point = classification_metrics(y_true, probs, positive)
    ci = bootstrap_intervals(y_true, probs, positive, n_boot=n_boot, seed=seed, alpha=alpha, groups=groups)
    exact = boundary_intervals(y_true, probs, positive, alpha=alpha, groups=groups)
    out: dict[str, Any] = {}
    methods = {}
    for name in METRIC_NAMES:
        out[name] = point[name]
        low, high = exact.get(name, ci[name])
        out[f"{name}_ci"] = [low, high]
        methods[name] = "clopper-pearson" if name in exact else ("group bootstrap" if groups else "bootstrap")
    out["n"] = int(point["n"])
    out["ci_level"] = 1 - alpha
    out["n_boot"] = n_boot
    out["ci_method"] = methods
    if groups is not None:
        out["n_groups"] = len(set(map(str, groups)))
    return out


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, NaN/inf written as ``None``."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer, bool, np.bool_)):
        return value.item() if hasattr(value, "item") else value
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value
