"""Learned deformable registration (VoxelMorph, Balakrishnan et al. 2019; diffeomorphic variant, Dalca et al.
2019): a U-Net sees the fixed and the moving image side by side and predicts a stationary velocity field, which
scaling and squaring integrates into a displacement field (MONAI's ``DVF2DDF``); a warping layer (MONAI's
``Warp``) resamples the moving image with it, so similarity and smoothness losses train the network without any
ground-truth field. Dimension-agnostic (2D and 3D).

Displacements are in voxels of the fixed grid, channel ``a`` along array axis ``a`` (MONAI's convention): the fixed
voxel ``p`` takes the moving image's value at ``p + ddf(p)``. The last convolution starts near zero (as in
VoxelMorph), so an untrained model is the identity rather than a random warp.
"""

from __future__ import annotations

import warnings

import torch
from monai.networks.blocks import DVF2DDF, Warp
from monai.networks.nets import UNet
from torch import nn

from medlearn.models.registry import register_model


class VelocityFieldNet(nn.Module):
    """``forward(pair)`` with ``pair`` ``(B, 2, *spatial)`` (fixed, moving) returns the displacement field
    ``(B, d, *spatial)`` in voxels; ``velocity(pair)`` the field before integration (what regularisation and test-
    time refinement act on); ``warp(image, ddf)`` resamples (linear; ``mode="nearest"`` for label maps)."""

    def __init__(
        self,
        spatial_dims: int = 3,
        channels: tuple[int, ...] = (16, 32, 32, 32),
        integration_steps: int = 7,
    ) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.integration_steps = integration_steps
        self.unet = UNet(
            spatial_dims=spatial_dims,
            in_channels=2,
            out_channels=spatial_dims,
            channels=channels,
            strides=(2,) * (len(channels) - 1),
            num_res_units=0,
            act=("leakyrelu", {"negative_slope": 0.2}),
            norm=None,
        )
        head = _last_conv(self.unet)
        nn.init.normal_(head.weight, std=1e-5)
        nn.init.zeros_(head.bias)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Using PyTorch native grid_sample")
            self.integrate = (
                DVF2DDF(num_steps=integration_steps, mode="bilinear", padding_mode="zeros")
                if integration_steps > 0
                else None
            )
        self.warper = quiet_warp("bilinear", "zeros")
        self.label_warper = quiet_warp("nearest", "zeros")

    def velocity(self, pair: torch.Tensor) -> torch.Tensor:
        return self.unet(pair)

    def to_displacement(self, velocity: torch.Tensor) -> torch.Tensor:
        """Scaling and squaring (a diffeomorphism) or, with 0 steps, the field as it is."""
        return self.integrate(velocity.float()) if self.integrate is not None else velocity.float()

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.to_displacement(self.velocity(pair))

    def warp(self, image: torch.Tensor, ddf: torch.Tensor, *, labels: bool = False) -> torch.Tensor:
        return (self.label_warper if labels else self.warper)(image.float(), ddf.float())


def _last_conv(module: nn.Module) -> nn.Module:
    kinds = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    return [m for m in module.modules() if isinstance(m, kinds)][-1]


def quiet_warp(mode: str, padding_mode: str) -> Warp:
    """MONAI's ``Warp`` without its note that it uses torch's ``grid_sample`` (which is what we want)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Using PyTorch native grid_sample")
        return Warp(mode=mode, padding_mode=padding_mode)


@register_model("voxelmorph", task="registration")
def voxelmorph(
    spatial_dims: int = 3, channels: tuple[int, ...] = (16, 32, 32, 32), integration_steps: int = 7
) -> VelocityFieldNet:
    """U-Net -> stationary velocity -> scaling and squaring (diffeomorphic VoxelMorph)."""
    return VelocityFieldNet(spatial_dims, tuple(channels), integration_steps)
