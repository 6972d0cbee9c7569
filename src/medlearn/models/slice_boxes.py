"""Slice classifiers that localise 3D bounding boxes (de Vos et al. 2016, METHODS.md loc-slices).

One 2D CNN per orientation (axial, coronal, sagittal: the three array axes of a canonical volume) says, for each
slice, which structures it passes through; a structure's box spans, along each axis, the run of slices its
classifier marks. Three cheap 2D decisions per slice replace a 3D search.
"""

from __future__ import annotations

import torch
from torch import nn

from medlearn.models.deep import build_resnet
from medlearn.models.registry import register_model


class SliceBoxClassifier(nn.Module):
    """Three 2D classifiers with ``num_structures`` logits each; ``forward(slices, axes)`` routes each slice to the
    classifier of its orientation."""

    def __init__(self, nets: list[nn.Module], num_structures: int) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.num_structures = num_structures

    def forward(self, slices: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
        logits = slices.new_zeros((slices.shape[0], self.num_structures), dtype=torch.float32)
        for axis, net in enumerate(self.nets):
            chosen = axes == axis
            if bool(chosen.any()):
                logits[chosen] = net(slices[chosen]).float()
        return logits


@register_model(
    "box-slices",
    task="localisation",
    summary="loc-slices (de Vos et al. 2016): per-orientation slice classifiers; the box is where all three agree",
)
def box_slices(in_channels: int = 1, num_structures: int = 1, backbone: str = "resnet10") -> nn.Module:
    """Three 2D ResNets (MONAI, stride-2 stem), one per orientation."""
    nets = [build_resnet(backbone, in_channels, num_structures, spatial_dims=2) for _ in range(3)]
    return SliceBoxClassifier(nets, num_structures)
