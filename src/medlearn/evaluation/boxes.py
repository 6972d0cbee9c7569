"""How close a predicted 3D (or 2D) bounding box is to the annotated one: IoU, centroid distance and wall distance
in millimetres, per structure and over images.

Boxes are ``(low..., high...)`` voxel-centre extents on one image grid (inclusive: a box ``[2, 5]`` covers voxels
2 to 5, i.e. ``[1.5, 5.5]`` in voxel edges); distances use the grid's spacing, so an anisotropic scan is judged
in millimetres. The IoU is MONAI's ``box_iou`` on the edge coordinates in mm. The wall distance is the mean absolute
offset of the 2d walls (each face of the box), the figure de Vos et al. report; the centroid distance is the
Euclidean distance between box centres. A structure the method did not find (no box) counts as a miss: IoU 0,
distances undefined, reported apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from monai.data.box_utils import box_iou

from medlearn.errors import MedlearnError


def box_edges_mm(box: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Voxel-centre extents ``(low..., high...)`` -> edges in mm ``(low - 0.5, high + 0.5) * spacing``."""
    box = np.asarray(box, dtype=np.float64)
    ndim = len(spacing)
    if box.shape != (2 * ndim,):
        raise MedlearnError(f"a {ndim}D box needs {2 * ndim} values, got {box.shape}")
    spacing = np.asarray(spacing, dtype=np.float64)
    return np.concatenate([(box[:ndim] - 0.5) * spacing, (box[ndim:] + 0.5) * spacing])


def box_metrics(predicted: np.ndarray | None, truth: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """``iou``, ``centroid_mm`` and ``wall_mm`` of one predicted box against the true one (``predicted`` None or
    NaN: not found -> IoU 0, distances NaN)."""
    truth_mm = box_edges_mm(truth, spacing)
    if predicted is None or np.isnan(np.asarray(predicted, dtype=float)).any():
        return {"iou": 0.0, "centroid_mm": float("nan"), "wall_mm": float("nan"), "found": 0.0}
    found_mm = box_edges_mm(predicted, spacing)
    ndim = len(spacing)
    iou = float(box_iou(torch.from_numpy(found_mm[None]), torch.from_numpy(truth_mm[None]))[0, 0])
    centre = np.linalg.norm((found_mm[:ndim] + found_mm[ndim:]) / 2 - (truth_mm[:ndim] + truth_mm[ndim:]) / 2)
    return {
        "iou": iou,
        "centroid_mm": float(centre),
        "wall_mm": float(np.mean(np.abs(found_mm - truth_mm))),
        "found": 1.0,
    }


def summarize_boxes(
    per_image: Sequence[Mapping[str, Mapping[str, float]]], structures: Sequence[str]
) -> dict[str, object]:
    """Means over images per structure and overall (IoU over all annotated boxes, misses as 0; distances over
    found boxes), from ``[{structure: box_metrics(...)}, ...]`` (a structure an image does not annotate is left
    out of that image's dict)."""
    per_structure = {}
    for name in structures:
        rows = [image[name] for image in per_image if name in image]
        per_structure[name] = _means(rows)
    every = [row for image in per_image for row in image.values()]
    return {**_means(every), "per_structure": per_structure}


def _means(rows: Sequence[Mapping[str, float]]) -> dict[str, float | int | None]:
    if not rows:
        return {"iou": None, "centroid_mm": None, "wall_mm": None, "found_share": None, "boxes": 0}
    found = [row for row in rows if row["found"]]
    return {
        "iou": float(np.mean([row["iou"] for row in rows])),
        "centroid_mm": float(np.mean([row["centroid_mm"] for row in found])) if found else None,
        "wall_mm": float(np.mean([row["wall_mm"] for row in found])) if found else None,
        "found_share": len(found) / len(rows),
        "boxes": len(rows),
    }
