"""Multi-resolution-tract CNN (Kawahara & Hamarneh 2016).

Parallel tracts see the same image at several resolutions (full, 1/2, 1/4 by average pooling
the input): with the same architecture, a coarse tract's receptive field covers 4x more of the
image, so the fused classifier gets fine texture and global shape at once. Each tract has its own
weights and, as in the paper, its own auxiliary classifier whose loss pushes every tract to be
discriminative on its own, not just in combination. ``resolutions=(1,)`` gives the single-tract
baseline (no auxiliary head: its only head *is* the fused one) for the "multi-res beats
single-res" comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Pool
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.registry import register_model
from medlearn.models.shallow import check_spatial_dims, conv_stage


class ResolutionTract(nn.Module):
    """Downsample the input by ``factor``, then ``depth`` stages of (stride-2 conv, conv), global pool."""

    def __init__(self, spatial_dims: int, in_channels: int, factor: int, width: int, depth: int) -> None:
        super().__init__()
        self.downsample = Pool[Pool.AVG, spatial_dims](factor) if factor > 1 else nn.Identity()
        stages: list[nn.Module] = []
        channels = in_channels
        for index in range(depth):
            out_channels = width * 2**index
            # Strided convs (not pooling) keep tiny coarse inputs valid: a 1-voxel map stays 1 voxel.
            stages.append(
                nn.Sequential(
                    conv_stage(spatial_dims, channels, out_channels, stride=2),
                    conv_stage(spatial_dims, out_channels, out_channels),
                )
            )
            channels = out_channels
        self.features = nn.Sequential(*stages)
        self.pool = nn.Sequential(Pool[Pool.ADAPTIVEAVG, spatial_dims](1), nn.Flatten(1))
        self.out_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(self.downsample(x)))


class MultiResolutionCNN(nn.Module):
    """Tracts at ``resolutions`` (downsampling factors), concatenated features, a fused linear classifier."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        resolutions: Sequence[int] = (1, 2, 4),
        width: int = 16,
        depth: int = 4,
        aux_weight: float = 0.3,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        resolutions = tuple(int(r) for r in resolutions)
        if not resolutions or min(resolutions) < 1 or len(set(resolutions)) != len(resolutions):
            raise MedlearnError(f"cls-multires resolutions must be distinct integers >= 1, got {resolutions}")
        self.resolutions = resolutions
        self.aux_weight = float(aux_weight)
        self.tracts = nn.ModuleList(
            ResolutionTract(spatial_dims, in_channels, factor, width, depth) for factor in resolutions
        )
        sizes = [tract.out_features for tract in self.tracts]
        self.classifier = nn.Linear(sum(sizes), num_classes)
        multi = len(resolutions) > 1
        self.aux_classifiers = nn.ModuleList(nn.Linear(size, num_classes) for size in sizes) if multi else None
        # Grad-CAM on the finest tract (sharpest map; coarse tracts add context), at the last conv of
        # its last stage, whose input carries gradient so PyTorch's full backward hook fires cleanly.
        finest = resolutions.index(min(resolutions))
        self.gradcam_layer = f"tracts.{finest}.features.{depth - 1}.1"

    def tract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [tract(x) for tract in self.tracts]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.cat(self.tract_features(x), dim=1))

    def training_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, criterion: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused loss + ``aux_weight`` x each tract's auxiliary loss; returns ``(loss, fused logits)``."""
        features = self.tract_features(inputs)
        logits = self.classifier(torch.cat(features, dim=1))
        loss = criterion(logits.float(), targets)
        if self.aux_classifiers is not None:
            for head, tract_features in zip(self.aux_classifiers, features, strict=True):
                loss = loss + self.aux_weight * criterion(head(tract_features).float(), targets)
        return loss, logits


@register_model(
    "cls-multires",
    task="classification",
    summary="Multi-resolution-tract CNN (Kawahara & Hamarneh 2016): tracts at 1, 1/2, 1/4 scale, fused",
)
def cls_multires(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, **kwargs) -> nn.Module:
    """Kwargs: ``resolutions`` (downsampling factors, (1, 2, 4)), ``width``, ``depth``, ``aux_weight``."""
    return MultiResolutionCNN(in_channels, num_classes, spatial_dims, **kwargs)
