"""Localisation cases as the network sees them, and the heat maps it learns.

The image goes onto the plan's grid (:func:`~medlearn.planning.preparation.prepare_image`), its landmarks follow
through world coordinates (:func:`~medlearn.planning.preparation.map_voxels`), and a ball around each landmark,
labelled with the landmark's number, lets patch sampling centre patches on every landmark equally often. The
patch's own landmarks (moved by its rotation and zoom; never mirrored, which would swap left and right) become
one Gaussian heat map per landmark, exactly 1 at the landmark's voxel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medlearn.apps.localisation.landmarks import ImageLandmarks
from medlearn.data.cases import Case
from medlearn.data.heatmaps import ball_mask, gaussian_heatmap
from medlearn.errors import MedlearnError
from medlearn.inference.peaks import refine_peak
from medlearn.io.image import MedicalImage
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import map_voxels, planned_affine, prepare_image

#: Default heat-map width in voxels of the plan's grid.
DEFAULT_SIGMA_VOXELS = 2.0


@dataclass
class LocalisationCase:
    """A prepared case and its landmarks on the plan's grid (``(K, d)`` voxels, NaN where not marked)."""

    case: Case
    landmarks: np.ndarray


def voxel_size_mm(plan: SegmentationPlan) -> float:
    return float(np.prod(plan.target_spacing) ** (1.0 / len(plan.target_spacing)))


def sigma_voxels(plan: SegmentationPlan, sigma_mm: float | None) -> float:
    return DEFAULT_SIGMA_VOXELS if sigma_mm is None else float(sigma_mm) / voxel_size_mm(plan)


def landmark_mask(image: MedicalImage, positions: np.ndarray, radius_mm: float) -> np.ndarray:
    """uint8 map on ``image``'s own grid with a ball of ``radius_mm`` around landmark ``k``, valued ``k + 1``
    (the fingerprint's foreground: the tissue around the landmarks)."""
    present = ~np.isnan(positions).any(axis=1)
    return ball_mask(
        image.spatial_shape,
        positions[present],
        np.full(int(present.sum()), float(radius_mm)),
        image.spacing,
        values=(np.flatnonzero(present) + 1).tolist(),
    )


def prepare_localisation_case(
    item: ImageLandmarks, names: Sequence[str], plan: SegmentationPlan, sigma: float
) -> LocalisationCase:
    """The image on the plan's grid, its landmarks mapped there, balls of 2 sigma for sampling."""
    if plan.slice_axis is not None:
        raise MedlearnError(
            "localisation does not support strongly anisotropic volumes yet; resample them closer to isotropic",
            item.sample.path,
        )
    array = prepare_image(item.image, plan)
    points = map_voxels(item.array(names), item.image.affine, planned_affine(item.image, plan))
    present = ~np.isnan(points).any(axis=1)
    labels = ball_mask(
        array.shape[1:],
        points[present],
        np.full(int(present.sum()), 2.0 * sigma),
        np.ones(len(plan.target_spacing)),
        values=(np.flatnonzero(present) + 1).tolist(),
    )
    case = Case(
        image=array,
        labels=labels,
        name=item.sample.path.name,
        sample=item.sample,
        points=points[present],
        point_ids=np.flatnonzero(present),
    )
    return LocalisationCase(case, points)


class LandmarkHeatmaps:
    """Targets, loss and decoding of one heat map per landmark."""

    def __init__(self, count: int, sigma: float) -> None:
        self.count = count
        self.sigma = sigma

    def batch_item(self, patch: Case) -> tuple[torch.Tensor, torch.Tensor]:
        shape = patch.spatial_shape
        heat = np.zeros((self.count, *shape), dtype=np.float32)
        points = np.zeros((0, len(shape))) if patch.points is None else np.asarray(patch.points, float)
        ids = np.zeros(0, int) if patch.point_ids is None else np.asarray(patch.point_ids, int)
        for point, index in zip(points, ids, strict=True):
            heat[index] = np.maximum(heat[index], gaussian_heatmap(shape, point[None], np.array([self.sigma])))
        return torch.from_numpy(np.ascontiguousarray(patch.image, dtype=np.float32)), torch.from_numpy(heat)

    @staticmethod
    def activation(logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    @staticmethod
    def locate(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(K, *spatial)`` heat maps -> ``(positions (K, d) voxels, peak values (K,))``: each map's highest
        voxel, refined between voxels."""
        positions, scores = [], []
        for heat in maps:
            peak = np.asarray(np.unravel_index(int(np.argmax(heat)), heat.shape))
            positions.append(refine_peak(heat, peak))
            scores.append(float(heat[tuple(peak)]))
        return np.array(positions).reshape(len(maps), maps.ndim - 1), np.array(scores)
