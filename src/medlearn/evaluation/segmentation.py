"""Segmentation metrics per case and per class, in millimetres, with MONAI's implementations.

Dice and IoU are overlaps; the 95th-percentile Hausdorff distance and the average (symmetric)
surface distance use the voxel spacing, so a 1-voxel error on 6.5 mm slices counts as 6.5 mm.
An empty prediction of a present structure gets an infinite distance (reported as ``inf``), and a
class absent from both prediction and truth gives NaN for every metric (excluded from means).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance, compute_iou
from monai.metrics.meandice import compute_dice

from medlearn.errors import MedlearnError

METRICS = ("dice", "iou", "hd95_mm", "asd_mm")


def segmentation_metrics(
    prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float], labels: Sequence[int]
) -> dict[int, dict[str, float]]:
    """``{label: {"dice", "iou", "hd95_mm", "asd_mm"}}`` for one case (label maps of equal shape, no channel)."""
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    if prediction.shape != truth.shape:
        raise MedlearnError(f"prediction shape {prediction.shape} does not match the mask's {truth.shape}")
    if len(spacing) != truth.ndim:
        raise MedlearnError(f"{len(spacing)} spacings for a {truth.ndim}D mask")
    labels = [int(v) for v in labels if int(v) != 0]
    pred = _one_hot(prediction, labels)
    true = _one_hot(truth, labels)
    dice = compute_dice(pred, true, include_background=True, ignore_empty=True)[0]
    iou = compute_iou(pred, true, include_background=True, ignore_empty=True)[0]
    spacing = [float(s) for s in spacing]
    with warnings.catch_warnings():  # empty structures are expected and handled below, not worth a warning
        warnings.filterwarnings("ignore", message=".* is all 0, this may result in nan/inf distance")
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        hd95 = compute_hausdorff_distance(pred, true, include_background=True, percentile=95, spacing=spacing)[0]
        asd = compute_average_surface_distance(pred, true, include_background=True, symmetric=True, spacing=spacing)[0]
    results = {}
    for index, label in enumerate(labels):
        present = bool(true[0, index].any() or pred[0, index].any())
        values = {
            "dice": float(dice[index]),
            "iou": float(iou[index]),
            "hd95_mm": float(hd95[index]),
            "asd_mm": float(asd[index]),
        }
        results[label] = values if present else dict.fromkeys(METRICS, float("nan"))
    return results


def _one_hot(label_map: np.ndarray, labels: Sequence[int]) -> torch.Tensor:
    """``(1, n_labels, *spatial)`` float tensor, one channel per foreground label."""
    channels = np.stack([label_map == label for label in labels]).astype(np.float32)
    return torch.from_numpy(channels)[None]
