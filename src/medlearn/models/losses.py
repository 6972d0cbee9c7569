"""Losses that no library here provides in the form the heat-map models need."""

from __future__ import annotations

import torch

#: CenterNet's exponents: alpha on the prediction, beta on the target's distance from the centre.
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0


def centre_focal_loss(
    logits: torch.Tensor, heat: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CenterNet's penalty-reduced focal loss (Zhou et al. 2019) of heat-map ``logits`` against Gaussian targets
    ``heat`` (1 exactly at each centre), summed and divided by the number of centres (at least 1); ``weights``
    (broadcastable, 0 or 1) leaves out channels without annotation. Returns ``(loss, centre mask)``.

    Near a centre the background penalty shrinks by ``(1 - heat) ** beta``, so a prediction one voxel off costs
    little; the ``alpha`` focusing keeps the millions of easy background voxels from swamping the few centres."""
    probability = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    centre = heat >= 1.0
    positive = (1 - probability) ** FOCAL_ALPHA * torch.log(probability)
    negative = (1 - heat) ** FOCAL_BETA * probability**FOCAL_ALPHA * torch.log(1 - probability)
    per_voxel = torch.where(centre, positive, negative)
    if weights is not None:
        per_voxel = per_voxel * weights
        centre = centre & (weights > 0)
    return -per_voxel.sum() / centre.sum().clamp(min=1), centre
