"""Mask overlays a reader can check at a glance: the image in grey, truth outlined in green,
prediction in red (overlap shows as yellow fill), on the most informative slice of a volume."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

from medlearn.io.geometry import thickest_axis

TRUTH_COLOUR = np.array([0.1, 0.9, 0.2], dtype=np.float32)
PREDICTION_COLOUR = np.array([1.0, 0.15, 0.1], dtype=np.float32)


def display_slice_index(mask: np.ndarray, axis: int) -> int:
    """The slice along ``axis`` holding the most foreground (the middle one when there is none)."""
    counts = (mask > 0).sum(axis=tuple(a for a in range(mask.ndim) if a != axis))
    return int(np.argmax(counts)) if counts.any() else mask.shape[axis] // 2


def grey_for_display(image: np.ndarray) -> np.ndarray:
    """A 2D (or first-channel) image stretched to [0, 1] by its 0.5-99.5 percentiles."""
    image = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(image, [0.5, 99.5])
    return np.clip((image - low) / max(float(high - low), 1e-6), 0.0, 1.0)


def mask_overlay(
    image: np.ndarray, prediction: np.ndarray | None = None, truth: np.ndarray | None = None
) -> np.ndarray:
    """RGB ``(H, W, 3)`` float image: grey background, truth outline green, prediction outline red and
    a light fill of the prediction."""
    grey = grey_for_display(image)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if prediction is not None:
        inside = prediction > 0
        rgb[inside] = 0.75 * rgb[inside] + 0.25 * PREDICTION_COLOUR
        rgb[find_boundaries(prediction, mode="inner")] = PREDICTION_COLOUR
    if truth is not None:
        rgb[find_boundaries(truth, mode="inner")] = TRUTH_COLOUR
    return rgb


def volume_overlay(
    image: np.ndarray,
    spacing: tuple[float, ...] | list[float],
    prediction: np.ndarray | None = None,
    truth: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Overlay of a ``(C, *spatial)`` image (2D as is; 3D on the slice with most truth, else prediction,
    foreground) and a caption naming the slice."""
    grey = np.asarray(image)[0]
    if grey.ndim == 2:
        return mask_overlay(grey, prediction, truth), ""
    axis = thickest_axis(spacing)
    reference = truth if truth is not None and np.any(truth) else prediction
    index = display_slice_index(reference if reference is not None else grey, axis)

    def take(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else np.take(array, index, axis=axis)

    overlay = mask_overlay(take(grey), take(prediction), take(truth))
    return np.rot90(overlay), f"slice {index} of axis {axis}"


#: Marker colours of detection overlays: found objects, missed objects, false-positive candidates.
HIT_COLOUR = TRUTH_COLOUR
MISS_COLOUR = np.array([1.0, 0.15, 0.1], dtype=np.float32)
FALSE_POSITIVE_COLOUR = np.array([1.0, 0.85, 0.0], dtype=np.float32)


def point_overlay(
    image: np.ndarray,
    spacing: tuple[float, ...] | list[float],
    markers: list[tuple[np.ndarray, float, np.ndarray]],
) -> tuple[np.ndarray, str]:
    """RGB overlay of a ``(C, *spatial)`` image with circles: each marker is ``(voxel point, radius in voxels,
    colour)``. A volume is shown as its maximum-intensity projection along its thickest axis (every object
    visible at once), the markers projected onto it; returns the overlay and a caption naming the view."""
    grey = np.asarray(image, dtype=np.float32)[0]
    caption = ""
    axes = [0, 1]
    if grey.ndim == 3:
        axis = thickest_axis(spacing)
        grey = grey.max(axis=axis)
        axes = [a for a in range(3) if a != axis]
        caption = f"maximum-intensity projection along axis {axis}"
    rgb = np.repeat(grey_for_display(grey)[..., None], 3, axis=-1)
    rows, cols = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]]
    for point, radius, colour in markers:
        row, col = float(point[axes[0]]), float(point[axes[1]])
        distance = np.hypot(rows - row, cols - col)
        outer = max(float(radius), 2.0) + 1.0
        rgb[(distance <= outer) & (distance > outer - 1.2)] = colour
    return rgb, caption


def box_planes(
    image: np.ndarray, boxes: list[tuple[np.ndarray, np.ndarray]], centre: np.ndarray
) -> list[tuple[np.ndarray, str]]:
    """Three orthogonal slices of a ``(C, X, Y, Z)`` volume through ``centre`` (voxels), each with the outline of
    every ``(box (low..., high...) voxel extents, colour)`` that the slice cuts; for the three-plane box figures."""
    grey = np.asarray(image, dtype=np.float32)[0]
    panels = []
    for axis, plane in enumerate(("sagittal (axis 0)", "coronal (axis 1)", "axial (axis 2)")):
        index = int(np.clip(round(float(centre[axis])), 0, grey.shape[axis] - 1))
        rgb = np.repeat(grey_for_display(np.take(grey, index, axis=axis))[..., None], 3, axis=-1)
        rows_axis, cols_axis = [a for a in range(3) if a != axis]
        for box, colour in boxes:
            if box is None or np.isnan(box).any() or not box[axis] - 0.5 <= index <= box[axis + 3] + 0.5:
                continue
            top, bottom = (int(np.clip(round(v), 0, rgb.shape[0] - 1)) for v in (box[rows_axis], box[rows_axis + 3]))
            left, right = (int(np.clip(round(v), 0, rgb.shape[1] - 1)) for v in (box[cols_axis], box[cols_axis + 3]))
            rgb[top : bottom + 1, [left, right]] = colour
            rgb[[top, bottom], left : right + 1] = colour
        panels.append((np.rot90(rgb), f"{plane}, slice {index}"))
    return panels
