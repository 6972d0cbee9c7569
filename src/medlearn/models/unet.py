"""U-Net (Ronneberger et al. 2015; 3D: Cicek et al. 2016) from MONAI.

Segmentation runs take depth and width (``base_channels``) from the plan (planning/plan.py: 32 in 2D, 16 in 3D).
"""

from __future__ import annotations

from monai.networks.nets import UNet
from torch import nn

from medlearn.models.registry import register_model
from medlearn.models.shallow import check_spatial_dims


@register_model("unet", task="segmentation", summary="U-Net 2D/3D (MONAI): encoder-decoder with skip connections")
def unet(
    in_channels: int = 1,
    num_classes: int = 2,
    spatial_dims: int = 2,
    depth: int = 4,
    base_channels: int = 16,
    num_res_units: int = 2,
    dropout: float = 0.0,
) -> nn.Module:
    """``depth`` down-sampling stages (the plan's), channels doubling from ``base_channels`` (capped at 320)."""
    check_spatial_dims(spatial_dims)
    channels = tuple(min(base_channels * 2**level, 320) for level in range(depth + 1))
    return UNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=num_classes,
        channels=channels,
        strides=(2,) * depth,
        num_res_units=num_res_units,
        norm="instance",
        dropout=dropout,
    )
