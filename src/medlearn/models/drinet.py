"""DRINet (Chen et al. 2018, IEEE TMI): dense encoder, residual inception bridge, unpooling decoder.

Chen et al. combine three block types, each chosen for one job: *dense connection blocks* in the
encoder reuse every earlier feature map (a layer sees the block input plus all previous outputs),
so a thin network still learns rich features; *residual inception blocks* mix 1x1, 3x3 and stacked
3x3 (~5x5) receptive fields at once, which suits structures of very different sizes; *unpooling
blocks* upsample through a learned transposed conv and a fixed interpolation + conv in parallel,
whose concatenation recovers detail better than either alone. As in the paper there are no U-Net
skip concatenations: the decoder works from the bottleneck features only.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Act, Conv, Norm, Pool
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.registry import register_model
from medlearn.models.shallow import check_spatial_dims, conv_stage


class DenseBlock(nn.Module):
    """``layers`` conv-BN-ReLU layers; each sees the concatenation of the block input and all earlier outputs."""

    def __init__(self, spatial_dims: int, in_channels: int, growth: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            conv_stage(spatial_dims, in_channels + index * growth, growth) for index in range(layers)
        )
        self.out_channels = in_channels + layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features, dim=1)


class TransitionDown(nn.Sequential):
    """1x1 conv-BN-ReLU to compress the dense features, then 2x max pooling."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__(
            conv_stage(spatial_dims, in_channels, out_channels, kernel_size=1),
            Pool[Pool.MAX, spatial_dims](kernel_size=2),
        )


class ResidualInception(nn.Module):
    """Parallel 1x1, 1x1->3x3, 1x1->3x3->3x3 branches, concatenated, 1x1-projected and added to the input."""

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        width = max(channels // 4, 1)
        self.branch1 = conv_stage(spatial_dims, channels, width, kernel_size=1)
        self.branch3 = nn.Sequential(
            conv_stage(spatial_dims, channels, width, kernel_size=1),
            conv_stage(spatial_dims, width, width),
        )
        self.branch5 = nn.Sequential(
            conv_stage(spatial_dims, channels, width, kernel_size=1),
            conv_stage(spatial_dims, width, width),
            conv_stage(spatial_dims, width, width),
        )
        self.project = nn.Sequential(
            Conv[Conv.CONV, spatial_dims](3 * width, channels, kernel_size=1, bias=False),
            Norm[Norm.BATCH, spatial_dims](channels),
        )
        self.act = Act[Act.RELU]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = torch.cat([self.branch1(x), self.branch3(x), self.branch5(x)], dim=1)
        return self.act(x + self.project(branches))


class UnpoolingBlock(nn.Module):
    """2x upsampling: transposed conv in parallel with interpolation + conv, outputs concatenated."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = max(out_channels // 2, 1)
        self.learned = nn.Sequential(
            Conv[Conv.CONVTRANS, spatial_dims](in_channels, half, kernel_size=2, stride=2, bias=False),
            Norm[Norm.BATCH, spatial_dims](half),
            Act[Act.RELU](),
        )
        self.interpolated = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_stage(spatial_dims, in_channels, out_channels - half),
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.learned(x), self.interpolated(x)], dim=1)


class DRINet(nn.Module):
    """Stem, ``depth`` (dense block, transition down), residual-inception bridge, ``depth`` unpooling stages."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        base_channels: int = 16,
        growth: int = 8,
        layers_per_block: int = 3,
        depth: int = 3,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if min(base_channels, growth, layers_per_block, depth) < 1:
            raise MedlearnError(
                "drinet base_channels, growth, layers_per_block and depth must all be >= 1, got "
                f"{base_channels}, {growth}, {layers_per_block}, {depth}"
            )
        self.depth = depth
        self.stem = conv_stage(spatial_dims, in_channels, base_channels)
        encoder: list[nn.Module] = []
        channels = base_channels
        for level in range(depth):
            dense = DenseBlock(spatial_dims, channels, growth, layers_per_block)
            channels = base_channels * 2 ** (level + 1)
            encoder.append(nn.Sequential(dense, TransitionDown(spatial_dims, dense.out_channels, channels)))
        self.encoder = nn.Sequential(*encoder)
        self.bridge = nn.Sequential(
            ResidualInception(spatial_dims, channels), ResidualInception(spatial_dims, channels)
        )
        decoder: list[nn.Module] = []
        for level in reversed(range(depth)):
            out_channels = base_channels * 2**level
            decoder.append(
                nn.Sequential(
                    UnpoolingBlock(spatial_dims, channels, out_channels),
                    ResidualInception(spatial_dims, out_channels),
                )
            )
            channels = out_channels
        self.decoder = nn.Sequential(*decoder)
        self.head = Conv[Conv.CONV, spatial_dims](channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2**self.depth
        sides = tuple(x.shape[2:])
        if any(side % multiple for side in sides):
            raise MedlearnError(
                f"drinet with depth={self.depth} needs every spatial side to be a multiple of {multiple}, got {sides}"
            )
        return self.head(self.decoder(self.bridge(self.encoder(self.stem(x)))))


@register_model(
    "drinet",
    task="segmentation",
    summary="DRINet (Chen et al. 2018): dense encoder, residual inception, unpooling decoder",
)
def drinet(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, **kwargs) -> nn.Module:
    """Kwargs: ``base_channels`` (16), ``growth`` (8), ``layers_per_block`` (3), ``depth`` (3)."""
    return DRINet(in_channels, num_classes, spatial_dims, **kwargs)
