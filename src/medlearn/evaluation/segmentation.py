"""Segmentation metrics per case and per class, in millimetres.

Dice and IoU are overlaps, computed here so that a structure predicted where the truth has none (a false
positive on a lesion-free case) scores 0, as a missed structure does; only a class absent from both
prediction and truth gives NaN (excluded from means). MONAI's ``ignore_empty`` would instead give NaN
whenever the truth is empty, dropping false positives from every mean. The 95th-percentile Hausdorff
distance and the average (symmetric) surface distance (MONAI) use the voxel spacing, so a 1-voxel error
on 6.5 mm slices counts as 6.5 mm; when one side is empty they are infinite (reported as ``inf``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

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
    spacing = [float(s) for s in spacing]
    with warnings.catch_warnings():  # empty structures are expected and handled below, not worth a warning
        warnings.filterwarnings("ignore", message=".* is all 0, this may result in nan/inf distance")
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        hd95 = compute_hausdorff_distance(pred, true, include_background=True, percentile=95, spacing=spacing)[0]
        asd = compute_average_surface_distance(pred, true, include_background=True, symmetric=True, spacing=spacing)[0]
    results = {}
    for index, label in enumerate(labels):
        predicted, expected = pred[0, index].bool(), true[0, index].bool()
        if not (predicted.any() or expected.any()):
            results[label] = dict.fromkeys(METRICS, float("nan"))
            continue
        overlap = float((predicted & expected).sum())
        total = float(predicted.sum() + expected.sum())
        one_side_empty = not (predicted.any() and expected.any())
        results[label] = {
            "dice": 2 * overlap / total,
            "iou": overlap / (total - overlap),
            "hd95_mm": float("inf") if one_side_empty else float(hd95[index]),
            "asd_mm": float("inf") if one_side_empty else float(asd[index]),
        }
    return results


def case_outcome(per_class: dict[int, dict[str, float]], truth_present: dict[int, bool]) -> str:
    """``"missed"`` when a structure of the truth was not predicted at all, ``"false positive"`` when a structure
    was predicted on a case whose truth has none of it, else ``"found"`` (or ``"empty"`` when nothing is in
    either); a case with both kinds of error counts as missed."""
    missed = any(truth_present[label] and values["dice"] == 0.0 for label, values in per_class.items())
    spurious = any(not truth_present[label] and values["dice"] == 0.0 for label, values in per_class.items())
    if missed:
        return "missed"
    if spurious:
        return "false positive"
    return "empty" if all(np.isnan(v["dice"]) for v in per_class.values()) else "found"


def _one_hot(label_map: np.ndarray, labels: Sequence[int]) -> torch.Tensor:
    """``(1, n_labels, *spatial)`` float tensor, one channel per foreground label."""
    channels = np.stack([label_map == label for label in labels]).astype(np.float32)
    return torch.from_numpy(channels)[None]
