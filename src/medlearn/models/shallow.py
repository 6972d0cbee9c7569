"""Customised shallow CNN for texture-like images (Li et al. 2014, lung ILD patches).

Li et al. showed that one convolutional layer (16 kernels) + pooling + three fully-connected
layers classifies interstitial-lung-disease texture patches as well as deeper networks: texture
has no large structures, so depth buys little and costs a lot. Their 32x32 patches were flattened
after pooling; here the pooled maps are first averaged onto a small fixed grid (``pooled_size``)
so the same network runs at any input size (128x128 slices, 3D volumes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.registry import register_model


def check_spatial_dims(spatial_dims: int) -> None:
    """Refuse anything but 2D or 3D with a clear user-facing message."""
    if spatial_dims not in (2, 3):
        raise MedlearnError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")


def conv_stage(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
    """Conv -> BatchNorm -> ReLU (MONAI ``Convolution``); no conv bias since BatchNorm has one."""
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        strides=stride,
        kernel_size=kernel_size,
        act="relu",
        norm="batch",
        bias=False,
    )


class ShallowCNN(nn.Module):
    """``depth`` conv stages (conv, BN, ReLU, 2x max-pool) then a small MLP, as in Li et al. 2014."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        width: int = 16,
        depth: int = 1,
        kernel_size: int = 7,
        hidden: Sequence[int] = (100, 50),
        pooled_size: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if depth < 1 or width < 1:
            raise MedlearnError(f"cls-shallow needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
        max_pool = Pool[Pool.MAX, spatial_dims]
        stages: list[nn.Module] = []
        channels = in_channels
        for index in range(depth):
            out_channels = width * 2**index
            # The paper's single layer uses large kernels to see a texture motif; later stages use 3x3.
            size = kernel_size if index == 0 else 3
            stages.append(nn.Sequential(conv_stage(spatial_dims, channels, out_channels, size), max_pool(2)))
            channels = out_channels
        self.features = nn.Sequential(*stages)
        # The last stage's pooled activations. Not "features" itself: its input (the image) needs no
        # gradient, which makes PyTorch's full backward hook (used by Grad-CAM) warn on every call.
        self.gradcam_layer = f"features.{depth - 1}.1"
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](pooled_size)
        layers: list[nn.Module] = [nn.Flatten(1)]
        features = channels * pooled_size**spatial_dims
        for units in hidden:
            layers += [nn.Linear(features, units), nn.ReLU(), nn.Dropout(dropout)]
            features = units
        layers.append(nn.Linear(features, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@register_model(
    "cls-shallow",
    task="classification",
    summary="Shallow CNN (Li et al. 2014): 1 conv layer x16 + pooling + 3 FC layers; cheap, for textures",
)
def cls_shallow(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, **kwargs) -> nn.Module:
    """Kwargs: ``width``, ``depth``, ``kernel_size``, ``hidden``, ``pooled_size``, ``dropout``."""
    return ShallowCNN(in_channels, num_classes, spatial_dims, **kwargs)
