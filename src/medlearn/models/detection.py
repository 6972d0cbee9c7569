"""Dense networks for detection (METHODS.md row det-pixel): a U-Net whose output maps a detection head decodes
into scored candidates (:mod:`medlearn.apps.detection.heads`).

- ``centre-heatmap`` (the default of ``detect train``): one channel is a heat map of object centres (CenterNet,
  Zhou et al. 2019: a Gaussian per object, trained with the penalty-reduced focal loss), a second channel the
  log radius at the centre; the heat map's local maxima are the candidates, touching objects stay apart.
- ``pixel-components``: the papers' pipeline (Chen et al. 2015): pixel classification (object vs background),
  then connected components of the probability map become candidates scored by their peak probability.

Both are dimension-agnostic (2D images, 3D volumes) and take depth and width from the plan, as segmentation does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medlearn.models.registry import register_model
from medlearn.models.unet import unet

#: Heat-map logit offset so the first predictions are ~0.1 everywhere (CenterNet's bias prior): without it the
#: focal loss of millions of background voxels swamps the first steps.
HEATMAP_PRIOR_LOGIT = -math.log((1 - 0.1) / 0.1)


class DenseDetector(nn.Module):
    """A dense backbone plus a fixed per-channel logit offset; ``head`` names the decoder of its output."""

    def __init__(self, backbone: nn.Module, head: str, prior: list[float]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.register_buffer("prior", torch.tensor(prior, dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.backbone(images)
        return out + self.prior.view(1, -1, *([1] * (out.ndim - 2))).to(out.dtype)


@register_model(
    "centre-heatmap",
    task="detection",
    summary="det-pixel, CenterNet style: U-Net heat map of object centres (+ radius); local maxima are candidates",
)
def centre_heatmap(
    in_channels: int = 1, spatial_dims: int = 2, depth: int = 4, base_channels: int = 16, num_res_units: int = 2
) -> nn.Module:
    """Channel 0: centre heat-map logits; channel 1: log object radius (voxels) at the centres."""
    backbone = unet(
        in_channels=in_channels,
        num_classes=2,
        spatial_dims=spatial_dims,
        depth=depth,
        base_channels=base_channels,
        num_res_units=num_res_units,
    )
    return DenseDetector(backbone, "heatmap", [HEATMAP_PRIOR_LOGIT, 0.0])


@register_model(
    "pixel-components",
    task="detection",
    summary="det-pixel (Chen et al. 2015): U-Net pixel classification; connected components are candidates",
)
def pixel_components(
    in_channels: int = 1, spatial_dims: int = 2, depth: int = 4, base_channels: int = 16, num_res_units: int = 2
) -> nn.Module:
    """Two-class logits (background, object) per voxel."""
    backbone = unet(
        in_channels=in_channels,
        num_classes=2,
        spatial_dims=spatial_dims,
        depth=depth,
        base_channels=base_channels,
        num_res_units=num_res_units,
    )
    return DenseDetector(backbone, "pixels", [0.0, 0.0])
