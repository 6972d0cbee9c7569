"""Networks that localise named landmarks as heat maps, one output channel per landmark.

``landmark-heatmap``: a U-Net (2D or 3D, sized by the plan) regressing a Gaussian heat map per landmark, trained
with the penalty-reduced focal loss; the landmark is the map's peak, placed between voxels by a log-parabola fit.
With a fixed logit prior every map starts near 0.1, so the first steps are not spent unlearning a 0.5 everywhere.
"""

from __future__ import annotations

import torch
from torch import nn

from medlearn.errors import MedlearnError
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


class TriPlanarHeatmap(nn.Module):
    """Three 2D U-Nets, one per orthogonal plane (Yang et al. 2015's tri-planar localisation, METHODS.md
    loc-triplanar), as a 3D-in, 3D-out module.

    ``forward`` runs each 2D network over every slice of a 3D patch along its axis and averages the three
    stacks of heat-map logits: a landmark is where the three planar detections agree. Training costs far less
    than a 3D network's: :meth:`training_loss` scores each network on a few slices per patch (those through the
    patch's landmarks first, then random ones), against the slices of the full 3D target, so the Gaussian tails
    of landmarks off the slice are learned as well.
    """

    head = "landmarks"

    def __init__(self, nets: list[nn.Module], num_landmarks: int, slices_per_axis: int = 4) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.slices_per_axis = slices_per_axis
        self.register_buffer("prior", torch.full((num_landmarks,), HEATMAP_PRIOR_LOGIT))

    def _axis_logits(self, images: torch.Tensor, axis: int, index: torch.Tensor | None = None) -> torch.Tensor:
        """The ``axis`` network's logits on (a selection of) the slices along spatial ``axis``: ``(B, K, S, h, w)``."""
        slices = images.movedim(2 + axis, 1)  # (B, S, C, h, w)
        if index is not None:
            slices = slices[:, index]
        batch, count = slices.shape[:2]
        logits = self.nets[axis](slices.reshape(batch * count, *slices.shape[2:]))
        logits = logits + self.prior.view(1, -1, 1, 1).to(logits.dtype)
        return logits.reshape(batch, count, *logits.shape[1:]).movedim(1, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        total = None
        for axis in range(3):
            logits = self._axis_logits(images, axis).movedim(2, 2 + axis)  # back to (B, K, X, Y, Z)
            total = logits if total is None else total + logits
        return total / 3.0

    def training_loss(self, images: torch.Tensor, heat: torch.Tensor, criterion) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of the three networks' losses on a few slices each (see the class docstring)."""
        losses = []
        for axis in range(3):
            size = images.shape[2 + axis]
            centres = torch.nonzero((heat >= 1.0).movedim(2 + axis, 0).flatten(1).any(dim=1)).flatten()
            wanted = min(self.slices_per_axis, size)
            picked = centres[torch.randperm(len(centres))[: wanted // 2]]
            rest = torch.randperm(size)
            rest = rest[~torch.isin(rest, picked)][: wanted - len(picked)]
            index = torch.cat([picked, rest]).to(images.device)
            logits = self._axis_logits(images, axis, index)
            target = heat.movedim(2 + axis, 2)[:, :, index]
            losses.append(criterion(logits, target))
        return torch.stack(losses).mean(), None


@register_model(
    "landmark-triplanar",
    task="localisation",
    summary="loc-triplanar (Yang et al. 2015): three 2D U-Nets on orthogonal slices; landmarks where they agree",
)
def landmark_triplanar(
    in_channels: int = 1,
    num_landmarks: int = 1,
    spatial_dims: int = 3,
    depth: int = 4,
    base_channels: int = 16,
    num_res_units: int = 2,
    slices_per_axis: int = 4,
) -> nn.Module:
    if spatial_dims != 3:
        raise MedlearnError("the tri-planar localiser works on 3D volumes; use landmark-heatmap for 2D images")
    nets = [
        unet(
            in_channels=in_channels,
            num_classes=num_landmarks,
            spatial_dims=2,
            depth=depth,
            base_channels=base_channels,
            num_res_units=num_res_units,
        )
        for _ in range(3)
    ]
    return TriPlanarHeatmap(nets, num_landmarks, slices_per_axis)
