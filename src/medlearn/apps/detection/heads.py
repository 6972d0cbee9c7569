"""How a dense detector's output becomes a loss and scored candidates (one class per ``DenseDetector.head``).

- :class:`CentreHeatmap` (CenterNet, Zhou et al. 2019): the target is a Gaussian bump per object centre
  (sigma = radius / 3, at least one voxel; exactly 1 at the centre voxel) trained with the penalty-reduced focal
  loss, plus the log radius regressed at the centre voxels. Candidates are the heat map's local maxima
  (3-voxel neighbourhood), refined to sub-voxel positions by a parabola through the log heat along each axis;
  their radius comes from the radius channel. Touching objects keep separate peaks.
- :class:`PixelComponents` (Chen et al. 2015, METHODS.md det-pixel): object-vs-background pixel classification
  (Dice + cross-entropy on the object outlines), then connected components of the probability map. A component
  of voxels >= 0.5 is a candidate scored by its peak probability; weaker regions (>= 0.2 but never 0.5) become
  low-score candidates too, so the FROC curve reaches the higher false-positive rates.

Points and radii are in voxels of the prepared (plan) grid; the caller maps them to the image and to mm.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from monai.losses import DiceCELoss
from scipy import ndimage

from medlearn.data.cases import Case
from medlearn.data.heatmaps import gaussian_heatmap, nearest_voxels
from medlearn.inference.peaks import local_maxima, refine_peak
from medlearn.models.losses import centre_focal_loss

#: Weight of the radius regression beside the heat-map loss (CenterNet's size weight).
RADIUS_WEIGHT = 0.1
#: Probability bounds of the component decoder (see the module docstring).
COMPONENT_THRESHOLD, WEAK_THRESHOLD = 0.5, 0.2


class DetectionHead(Protocol):
    """Targets, loss, output activation and decoding of one kind of dense detector."""

    #: Output channels of the network (what :func:`medlearn.inference.sliding_window.dense_probabilities` returns).
    channels: int

    def batch_item(self, patch: Case) -> tuple[torch.Tensor, ...]: ...

    def loss(self, outputs: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor: ...

    def activation(self, logits: torch.Tensor) -> torch.Tensor: ...

    def candidates(self, maps: np.ndarray, *, max_candidates: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``maps`` ``(channels, *spatial)`` -> ``(points (N, d), scores (N,), radii (N,))`` in voxels, best
        first."""
        ...


class CentreHeatmap:
    """Object-centre heat map + log radius (see the module docstring)."""

    channels = 2

    def batch_item(self, patch: Case) -> tuple[torch.Tensor, ...]:
        shape = patch.spatial_shape
        points = np.zeros((0, len(shape))) if patch.points is None else np.asarray(patch.points, float)
        radii = np.ones(len(points)) if patch.point_radii is None else np.asarray(patch.point_radii, float)
        heat, log_radius = centre_targets(shape, points, radii)
        return (
            torch.from_numpy(np.ascontiguousarray(patch.image, dtype=np.float32)),
            torch.from_numpy(heat[None]),
            torch.from_numpy(log_radius[None]),
        )

    def loss(self, outputs: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        _, heat, log_radius = batch
        outputs = outputs.float()
        focal, centre = centre_focal_loss(outputs[:, :1], heat)
        radius_error = (outputs[:, 1:2] - log_radius).abs()[centre].sum() / centre.sum().clamp(min=1)
        return focal + RADIUS_WEIGHT * radius_error

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.sigmoid(logits[:, :1]), logits[:, 1:2]], dim=1)

    def candidates(self, maps: np.ndarray, *, max_candidates: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        heat, log_radius = maps[0], maps[1]
        where, scores = local_maxima(heat, max_candidates)
        points = np.array([refine_peak(heat, peak) for peak in where]).reshape(len(where), heat.ndim)
        radii = np.exp(log_radius[tuple(where.T)]) if len(where) else np.zeros(0)
        return points, scores.astype(np.float64), radii.astype(np.float64)


class PixelComponents:
    """Pixel classification, then connected components (see the module docstring)."""

    channels = 2

    def __init__(self) -> None:
        self.criterion = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)

    def batch_item(self, patch: Case) -> tuple[torch.Tensor, ...]:
        labels = np.zeros(patch.spatial_shape, np.int64) if patch.labels is None else (patch.labels > 0)
        return (
            torch.from_numpy(np.ascontiguousarray(patch.image, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)[None]),
        )

    def loss(self, outputs: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.criterion(outputs.float(), batch[1])

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def candidates(self, maps: np.ndarray, *, max_candidates: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        probability = maps[1]
        structure = ndimage.generate_binary_structure(probability.ndim, probability.ndim)
        strong, _ = ndimage.label(probability >= COMPONENT_THRESHOLD, structure=structure)
        weak, count = ndimage.label(probability >= WEAK_THRESHOLD, structure=structure)
        regions = strong.copy()
        offset = int(strong.max())
        has_strong = ndimage.maximum(strong > 0, weak, np.arange(1, count + 1)) if count else np.zeros(0)
        for index in np.flatnonzero(np.asarray(has_strong) == 0):  # weak regions with no strong core
            regions[weak == index + 1] = offset + index + 1
        found = np.unique(regions[regions > 0])
        if not found.size:
            return np.zeros((0, probability.ndim)), np.zeros(0), np.zeros(0)
        scores = np.asarray(ndimage.maximum(probability, regions, found), dtype=np.float64)
        points = np.array(ndimage.center_of_mass(probability, regions, found), dtype=np.float64)
        voxels = np.asarray(ndimage.sum_labels(np.ones_like(probability), regions, found), dtype=np.float64)
        radii = np.sqrt(voxels / np.pi) if probability.ndim == 2 else np.cbrt(3 * voxels / (4 * np.pi))
        order = np.argsort(-scores, kind="stable")[:max_candidates]
        return points.reshape(-1, probability.ndim)[order], scores[order], radii[order]


HEADS: dict[str, type] = {"heatmap": CentreHeatmap, "pixels": PixelComponents}


def head_for(model) -> DetectionHead:
    """The head that decodes ``model``'s output (its ``head`` attribute, set by the detection model factories)."""
    name = getattr(model, "head", None)
    if name not in HEADS:
        raise ValueError(f"model {type(model).__name__} is not a detection model (head {name!r})")
    return HEADS[name]()


def centre_targets(shape, points: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heat map (a Gaussian of sigma = radius / 3, at least one voxel, per point; see
    :func:`medlearn.data.heatmaps.gaussian_heatmap`) and log radius at the centre voxels (0 elsewhere)."""
    radii = np.asarray(radii, dtype=float)
    heat = gaussian_heatmap(shape, points, np.maximum(radii / 3.0, 1.0))
    log_radius = np.zeros(tuple(shape), dtype=np.float32)
    for voxel, radius in zip(nearest_voxels(shape, points), radii, strict=True):
        log_radius[tuple(voxel)] = np.log(max(float(radius), 0.5))
    return heat, log_radius
