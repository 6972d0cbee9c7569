"""Networks that localise named landmarks as heat maps, one output channel per landmark.

``landmark-heatmap``: a U-Net (2D or 3D, sized by the plan) regressing a Gaussian heat map per landmark, trained
with the penalty-reduced focal loss; the landmark is the map's peak, placed between voxels by a log-parabola fit.
With a fixed logit prior every map starts near 0.1, so the first steps are not spent unlearning a 0.5 everywhere.
"""

from __future__ import annotations

from torch import nn

from medlearn.models.detection import HEATMAP_PRIOR_LOGIT, DenseDetector
from medlearn.models.registry import register_model
from medlearn.models.unet import unet


@register_model(
    "landmark-heatmap",
    task="localisation",
    summary="U-Net heat map per landmark (2D/3D); the peak, refined between voxels, is the landmark",
)
def landmark_heatmap(
    in_channels: int = 1,
    num_landmarks: int = 1,
    spatial_dims: int = 3,
    depth: int = 4,
    base_channels: int = 16,
    num_res_units: int = 2,
) -> nn.Module:
    backbone = unet(
        in_channels=in_channels,
        num_classes=num_landmarks,
        spatial_dims=spatial_dims,
        depth=depth,
        base_channels=base_channels,
        num_res_units=num_res_units,
    )
    return DenseDetector(backbone, "landmarks", [HEATMAP_PRIOR_LOGIT] * num_landmarks)
