"""Learned registration as a :class:`~medlearn.engine.task.Task`: the one trainer optimises it.

A batch is ``(pair (B, 2, *shape), fixed_labels, moving_labels)`` (label maps ``(B, 1, *shape)``, -1 without
labels). The loss is an image similarity between the fixed image and the warped moving one (local NCC, MSE or
global mutual information, MONAI's), plus ``smoothness`` times the diffusion regulariser of the displacement, plus
``label_weight`` times the Dice loss of the warped moving label map (one-hot, warped linearly so it has a gradient)
when the cohort is labelled: the semi-supervised VoxelMorph. Validation warps label maps by nearest neighbour and
scores their mean Dice over the foreground labels (``dice``, the monitor when labelled), the NCC of the images
(``ncc``, the monitor otherwise) and the share of folded voxels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, GlobalMutualInformationLoss, LocalNormalizedCrossCorrelationLoss
from torch import nn

from medlearn.data.deformation import jacobian_determinant
from medlearn.engine.task import StepResult
from medlearn.io.geometry import image_from_affine


def similarity_loss(name: str, spatial_dims: int) -> nn.Module:
    if name == "lncc":
        return LocalNormalizedCrossCorrelationLoss(spatial_dims=spatial_dims, kernel_size=7, kernel_type="rectangular")
    if name == "mi":
        return GlobalMutualInformationLoss(num_bins=32)
    return nn.MSELoss()


class RegistrationTask:
    """See the module docstring."""

    monitor_mode: Literal["max", "min"] = "max"

    def __init__(self, settings, spatial_dims: int, num_labels: int) -> None:
        self.similarity = similarity_loss(settings.similarity, spatial_dims)
        self.regulariser = diffusion
        self.smoothness = settings.smoothness
        self.label_weight = settings.label_weight if num_labels > 1 else 0.0
        self.num_labels = num_labels
        self.dice = DiceLoss(include_background=False, reduction="mean")
        self.monitor = "dice" if num_labels > 1 else "ncc"

    def objective(
        self, model: nn.Module, pair: torch.Tensor, ddf: torch.Tensor, fixed_labels=None, moving_labels=None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of displacement ``ddf`` on ``pair`` (also what test-time refinement minimises)."""
        warped = model.warp(pair[:, 1:2], ddf)
        image_term = self.similarity(warped, pair[:, :1].float())
        smooth_term = self.regulariser(ddf)
        loss = image_term + self.smoothness * smooth_term
        extras = {"similarity": float(image_term.detach()), "smoothness": float(smooth_term.detach())}
        if self.label_weight > 0 and fixed_labels is not None and bool((fixed_labels >= 0).all()):
            warped_labels = model.warp(self.one_hot(moving_labels), ddf)
            label_term = self.dice(warped_labels, self.one_hot(fixed_labels))
            loss = loss + self.label_weight * label_term
            extras["label_dice_loss"] = float(label_term.detach())
        return loss, extras

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels[:, 0].clamp(min=0), self.num_labels).movedim(-1, 1).float()

    def training_step(self, model: nn.Module, batch) -> StepResult:
        pair, fixed_labels, moving_labels = batch
        ddf = model(pair)
        loss, extras = self.objective(model, pair, ddf, fixed_labels, moving_labels)
        return StepResult(loss=loss, batch_size=int(pair.shape[0]), extras=extras)

    def validation_step(self, model: nn.Module, batch) -> dict[str, float]:
        pair, fixed_labels, moving_labels = batch
        ddf = model(pair)
        warped = model.warp(pair[:, 1:2], ddf)
        out = {"ncc": image_ncc(warped, pair[:, :1]), "folding": folding_share(ddf)}
        if self.num_labels > 1 and bool((fixed_labels >= 0).all()):
            warped_labels = model.warp(moving_labels.float(), ddf, labels=True).long()
            out["dice"] = mean_label_dice(warped_labels, fixed_labels, self.num_labels)
        return out

    def validation_metrics(self, outputs: list[dict[str, float]]) -> dict[str, float]:
        keys = ("dice", "ncc", "folding") if self.num_labels > 1 else ("ncc", "folding")
        return {key: float(np.mean([o[key] for o in outputs if key in o])) if outputs else float("nan") for key in keys}


def diffusion(ddf: torch.Tensor) -> torch.Tensor:
    """Mean squared forward difference of the displacement along every spatial axis (VoxelMorph's ``Grad('l2')``).
    MONAI's ``DiffusionLoss`` computes the same with central differences but indexes tensors in a way torch
    deprecates, so it is written out here."""
    terms = [torch.diff(ddf.float(), dim=axis).pow(2).mean() for axis in range(2, ddf.ndim)]
    return torch.stack(terms).mean()


def image_ncc(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float().flatten(), b.float().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp(min=1e-8))


def mean_label_dice(prediction: torch.Tensor, truth: torch.Tensor, num_labels: int) -> float:
    scores = []
    for label in range(1, num_labels):
        p, t = prediction == label, truth == label
        total = int(p.sum() + t.sum())
        if total:
            scores.append(2.0 * int((p & t).sum()) / total)
    return float(np.mean(scores)) if scores else float("nan")


def folding_share(ddf: torch.Tensor) -> float:
    """Share of voxels whose Jacobian determinant of ``x -> x + ddf(x)`` is <= 0 (voxel units)."""
    field = image_from_affine(ddf[0].detach().float().cpu().numpy(), np.eye(4))  # voxel units: unit steps
    return float((jacobian_determinant(field) <= 0).mean())
