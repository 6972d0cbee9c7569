"""Statistics over repeated runs (seeds): mean with t-interval, paired differences, and their verdict.

A study that repeats every training with several seeds reports, per setting, the mean and a two-sided
t-interval over the seeds, and compares two settings by the per-seed (paired) difference. The interval
reflects the variability between seeds (data subset drawn, initialisation, training randomness), not
the sampling error of a fixed test set. Kept apart from any one study so that all of them word their
intervals and verdicts alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def mean_interval(values: Sequence[float], confidence: float = 0.95, bounds: tuple[float, float] | None = None) -> dict:
    """Mean, sample SD and two-sided t-interval of ``values`` (NaNs dropped); low/high None below 2 values.

    ``bounds``: the range the quantity cannot leave (a proportion: 0 to 1); the interval is clipped to it
    (``clipped`` says when), instead of reporting an accuracy interval reaching 101%."""
    from scipy import stats

    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = len(finite)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "sd": None, "n": 0}
    mean = float(finite.mean())
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "sd": None, "n": 1}
    sd = float(finite.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    clipped = bounds is not None and (low < bounds[0] or high > bounds[1])
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "low": low, "high": high, "sd": sd, "n": n, "clipped": clipped}


def paired_difference(baseline: Mapping[int, float], other: Mapping[int, float], confidence: float = 0.95) -> dict:
    """``other - baseline`` per seed present in both (in seed order): :func:`mean_interval` plus the ``values``."""
    diffs = [other[s] - baseline[s] for s in sorted(set(baseline) & set(other))]
    return {**mean_interval(diffs, confidence), "values": diffs}


def verdict(interval: dict) -> str:
    """ "helped" / "hurt" / "no significant difference" from a difference's interval ("undetermined" without one)."""
    if interval["low"] is None:
        return "undetermined (fewer than 2 seeds)"
    if interval["low"] > 0:
        return "helped"
    if interval["high"] < 0:
        return "hurt"
    return "no significant difference"
