"""Peaks of heat maps as points: local maxima, and their sub-voxel position.

A heat-map network marks an object or landmark with a bump; its top is found as a voxel that is the maximum of
its 3-voxel neighbourhood, then placed between voxels by a parabola through the log heat of the peak and its two
neighbours along each axis, which is exact for a Gaussian bump of any width (the centroid of the neighbourhood
is biased towards the peak voxel by up to a third of a voxel).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def local_maxima(heat: np.ndarray, max_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``max_count`` local maxima of a positive map, highest first: ``(voxel indices (N, d), values (N,))``."""
    peaks = (heat == ndimage.maximum_filter(heat, size=3, mode="constant")) & (heat > 0)
    where = np.argwhere(peaks)
    values = heat[peaks]
    order = np.argsort(-values, kind="stable")[:max_count]
    return where[order], values[order]


def refine_peak(heat: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """The sub-voxel position of the peak at voxel ``peak`` (see the module docstring), at most half a voxel off."""
    peak = np.asarray(peak, dtype=int)
    refined = peak.astype(np.float64)
    for axis in range(heat.ndim):
        if peak[axis] == 0 or peak[axis] == heat.shape[axis] - 1:
            continue
        before, after = peak.copy(), peak.copy()
        before[axis] -= 1
        after[axis] += 1
        values = [heat[tuple(index)] for index in (before, peak, after)]
        if min(values) <= 0:
            continue
        low, centre, high = np.log(np.asarray(values, dtype=np.float64))
        curvature = low - 2 * centre + high
        if curvature < 0:
            refined[axis] += float(np.clip(0.5 * (low - high) / curvature, -0.5, 0.5))
    return refined
