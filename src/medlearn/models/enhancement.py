"""Image restoration networks (task "enhancement"): residual denoisers and super-resolution nets, 2D.

- ``dncnn``: DnCNN (Zhang et al. 2017, "Beyond a Gaussian denoiser"): conv-ReLU, ``depth - 2`` x
  (conv-BN-ReLU), conv, predicting the *noise*, subtracted from the input (residual learning). The
  paper uses 17 layers x 64 channels; the default here, 10 x 48, trains in minutes on a CPU.
- ``red-unet``: MONAI's ``BasicUNet`` (small features) with a residual output ``x + unet(x)``, a
  multi-scale denoiser with a larger receptive field than DnCNN's.
- ``sr-resnet``: an EDSR-style super-resolution net (Lim et al. 2017): conv head, residual blocks without
  batch norm (residual scaling 0.1), PixelShuffle upsampling (Shi et al. 2016) by 2 or 4 (two x2 steps),
  added to the bicubic upsampling of the input, so the net only learns the missing detail.
- ``sr-espcn``: ESPCN (Shi et al. 2016): three convolutions and one PixelShuffle, plus the same bicubic
  skip; the smallest, fastest SR model.

Every model takes and returns ``(B, C, H, W)`` images in [0, 1] units; ``model.scale`` is its upsampling
factor (1 for denoisers). Sizes need no divisibility (BasicUNet pads internally).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.registry import register_model

#: What each enhancement model restores: "denoise" (same size) or "sr" (upsamples by ``scale``).
ENHANCEMENT_KINDS: dict[str, str] = {"dncnn": "denoise", "red-unet": "denoise", "sr-resnet": "sr", "sr-espcn": "sr"}
#: The model ``enhance train`` uses when none is named.
DEFAULT_ENHANCEMENT_MODELS: dict[str, str] = {"denoise": "dncnn", "sr": "sr-resnet"}


def _check_2d(spatial_dims: int) -> None:
    if spatial_dims != 2:
        raise MedlearnError(f"enhancement models are 2D (volumes are enhanced slice by slice), got {spatial_dims}D")


def _check_scale(scale: int) -> int:
    if int(scale) not in (2, 4):
        raise MedlearnError(f"super-resolution scale must be 2 or 4, got {scale}")
    return int(scale)


class DnCNN(nn.Module):
    """Residual denoiser: ``x - body(x)`` where ``body`` estimates the noise."""

    scale = 1

    def __init__(self, in_channels: int = 1, depth: int = 10, width: int = 48, batch_norm: bool = True) -> None:
        super().__init__()
        if depth < 3:
            raise MedlearnError(f"DnCNN needs at least 3 layers, got {depth}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers.append(nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(width, in_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(self.body[-1].weight)  # starts as the identity: the noisy input itself
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x).to(x.dtype)


class ResidualUNet(nn.Module):
    """``x + BasicUNet(x)`` (MONAI), the U-Net's last layer starting at zero."""

    scale = 1

    def __init__(self, in_channels: int = 1, features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)) -> None:
        super().__init__()
        from monai.networks.nets import BasicUNet

        self.unet = BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=in_channels, features=features)
        nn.init.zeros_(self.unet.final_conv.weight)
        nn.init.zeros_(self.unet.final_conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.unet(x).to(x.dtype)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


def _upsampler(width: int, scale: int) -> nn.Sequential:
    steps: list[nn.Module] = []
    for _ in range({2: 1, 4: 2}[scale]):
        steps += [nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2)]
    return nn.Sequential(*steps)


def _bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


class EDSR(nn.Module):
    """EDSR-style SR: ``bicubic(x) + tail(upsample(head(x) + body(head(x))))``."""

    def __init__(self, in_channels: int = 1, scale: int = 2, width: int = 48, blocks: int = 8) -> None:
        super().__init__()
        self.scale = _check_scale(scale)
        self.head = nn.Conv2d(in_channels, width, 3, padding=1)
        self.body = nn.Sequential(
            *[_ResidualBlock(width, 0.1) for _ in range(blocks)], nn.Conv2d(width, width, 3, padding=1)
        )
        self.upsample = _upsampler(width, self.scale)
        self.tail = nn.Conv2d(width, in_channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        detail = self.tail(self.upsample(features + self.body(features)))
        return _bicubic(x, self.scale) + detail.to(x.dtype)


class ESPCN(nn.Module):
    """ESPCN: conv 5x5 (64) - tanh - conv 3x3 (32) - tanh - conv 3x3 (C r^2) - PixelShuffle(r), + bicubic."""

    def __init__(self, in_channels: int = 1, scale: int = 2, width: int = 64) -> None:
        super().__init__()
        self.scale = _check_scale(scale)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(width, width // 2, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(width // 2, in_channels * self.scale**2, 3, padding=1),
            nn.PixelShuffle(self.scale),
        )
        nn.init.zeros_(self.body[4].weight)
        nn.init.zeros_(self.body[4].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _bicubic(x, self.scale) + self.body(x).to(x.dtype)


@register_model("dncnn", task="enhancement")
def dncnn(in_channels: int = 1, depth: int = 10, width: int = 48, batch_norm: bool = True, spatial_dims: int = 2):
    """DnCNN residual denoiser (Zhang 2017), 10 layers x 48 channels by default (CPU-sized)."""
    _check_2d(spatial_dims)
    return DnCNN(in_channels, depth, width, batch_norm)


@register_model("red-unet", task="enhancement")
def red_unet(in_channels: int = 1, features: tuple[int, ...] = (16, 16, 32, 64, 128, 16), spatial_dims: int = 2):
    """Residual denoising U-Net: x + MONAI BasicUNet(x), small features."""
    _check_2d(spatial_dims)
    return ResidualUNet(in_channels, tuple(features))


@register_model("sr-resnet", task="enhancement")
def sr_resnet(in_channels: int = 1, scale: int = 2, width: int = 48, blocks: int = 8, spatial_dims: int = 2):
    """EDSR-style residual super-resolution, PixelShuffle x2/x4 over a bicubic skip."""
    _check_2d(spatial_dims)
    return EDSR(in_channels, scale, width, blocks)


@register_model("sr-espcn", task="enhancement")
def sr_espcn(in_channels: int = 1, scale: int = 2, width: int = 64, spatial_dims: int = 2):
    """ESPCN sub-pixel super-resolution (Shi 2016) over a bicubic skip; the fastest SR model."""
    _check_2d(spatial_dims)
    return ESPCN(in_channels, scale, width)
