"""Maps drawn from points: Gaussian heat maps (the training targets of heat-map detectors and landmark
localisers) and balls (the foreground that fingerprints and patch sampling see around annotated points).

A point becomes a Gaussian bump of its own width (sigma in voxels), exactly 1 at the voxel nearest to it so the
penalty-reduced focal loss (:func:`medlearn.models.losses.centre_focal_loss`) has one positive per point;
overlapping bumps keep the larger value (CenterNet's rule), so two close objects remain two peaks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def gaussian_heatmap(shape: Sequence[int], points: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """float32 map of ``shape`` with a Gaussian of ``sigmas[n]`` voxels around each ``points[n]`` (voxel
    coordinates, sub-voxel allowed), cut at 3 sigma, maximum where they overlap, 1 at each point's nearest voxel."""
    heat = np.zeros(tuple(shape), dtype=np.float32)
    upper = np.asarray(shape) - 1
    for point, sigma in zip(np.asarray(points, float), np.asarray(sigmas, float), strict=True):
        reach = int(np.ceil(3 * sigma))
        centre = np.clip(np.rint(point).astype(int), 0, upper)
        low, high = np.clip(centre - reach, 0, upper), np.clip(centre + reach, 0, upper)
        region = tuple(slice(a, b + 1) for a, b in zip(low, high, strict=True))
        grid = np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(low, high, strict=True)], indexing="ij")
        squared = sum((g - p) ** 2 for g, p in zip(grid, point, strict=True))
        heat[region] = np.maximum(heat[region], np.exp(-squared / (2 * sigma**2)).astype(np.float32))
        heat[tuple(centre)] = 1.0
    return heat


def nearest_voxels(shape: Sequence[int], points: np.ndarray) -> np.ndarray:
    """``(N, d)`` int voxel indices nearest to each point, clipped to the grid."""
    points = np.asarray(points, dtype=float).reshape(-1, len(shape))
    return np.clip(np.rint(points).astype(int), 0, np.asarray(shape) - 1)


def ball_mask(
    shape: Sequence[int],
    centres: np.ndarray,
    radius_mm: np.ndarray,
    spacing: Sequence[float],
    values: Sequence[int] | None = None,
) -> np.ndarray:
    """uint8 map with a ball (an ellipsoid in voxels) of each radius around each centre, valued ``values[n]``
    (default 1; later balls win where they overlap), at least the centre voxel so a tiny object is never
    invisible. Only each ball's bounding box is computed: cheap on large volumes."""
    mask = np.zeros(tuple(shape), dtype=np.uint8)
    spacing = np.asarray(spacing, dtype=np.float64)
    upper = np.asarray(shape) - 1
    centres = np.asarray(centres, float).reshape(-1, len(shape))
    values = [1] * len(centres) if values is None else list(values)
    for centre, radius, value in zip(centres, np.asarray(radius_mm, float), values, strict=True):
        reach = np.ceil(radius / spacing).astype(int)
        low = np.clip(np.floor(centre).astype(int) - reach, 0, upper)
        high = np.clip(np.ceil(centre).astype(int) + reach, 0, upper)
        grid = np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(low, high, strict=True)], indexing="ij")
        distance = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True)))
        region = tuple(slice(a, b + 1) for a, b in zip(low, high, strict=True))
        mask[region] = np.where(distance <= radius, np.uint8(value), mask[region])
        mask[tuple(np.clip(np.rint(centre).astype(int), 0, upper))] = value
    return mask
