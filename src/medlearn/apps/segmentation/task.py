"""Semantic segmentation as a :class:`~medlearn.engine.task.Task`: Dice + cross-entropy on patches,
validation by sliding-window inference over whole cases.

Dice + CE (MONAI's ``DiceCELoss``, Dice over the foreground classes and the whole batch) is nnU-Net's
loss: cross-entropy gives stable per-voxel gradients early on, the Dice term keeps small structures
from drowning in background. Validation segments each validation case completely, as a user's
prediction would, so the best checkpoint is chosen on the quantity that matters (mean foreground Dice).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from monai.losses import DiceCELoss
from torch import nn

from medlearn.engine.task import StepResult, model_objective
from medlearn.inference.sliding_window import dense_probabilities
from medlearn.planning.plan import SegmentationPlan


def foreground_dice(prediction: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dice of each foreground class ``1..K-1`` between two index maps; NaN where both are empty."""
    values = []
    for k in range(1, num_classes):
        pred, true = prediction == k, truth == k
        denominator = int(pred.sum() + true.sum())
        overlap = int((pred & true).sum())
        values.append(2.0 * overlap / denominator if denominator else float("nan"))
    return torch.tensor(values, dtype=torch.float64)


class SegmentationTask:
    """Batches are ``(images (B, C, *patch), labels (B, *patch))``; validation batches are one whole case."""

    monitor = "dice"
    monitor_mode: Literal["max", "min"] = "max"

    def __init__(self, plan: SegmentationPlan, *, overlap: float = 0.25) -> None:
        self.plan = plan
        self.num_classes = plan.num_classes
        self.overlap = overlap
        self.criterion = DiceCELoss(
            to_onehot_y=True, softmax=True, include_background=self.num_classes == 1, batch=True
        )

    def training_step(self, model: nn.Module, batch) -> StepResult:
        images, labels = batch
        loss, _ = model_objective(model, images, labels[:, None], _FloatLoss(self.criterion))
        return StepResult(loss=loss, batch_size=int(images.shape[0]))

    def validation_step(self, model: nn.Module, batch) -> torch.Tensor:
        image, labels = batch
        probabilities = dense_probabilities(model, image[0], self.plan.window(self.overlap))
        return foreground_dice(probabilities.argmax(0), labels[0].cpu(), self.num_classes)

    def validation_metrics(self, outputs: list[torch.Tensor]) -> dict[str, float]:
        per_class = np.nanmean(torch.stack(outputs).numpy(), axis=0) if outputs else np.array([np.nan])
        metrics = {f"dice_{self.plan.labels[k + 1]}": float(v) for k, v in enumerate(per_class)}
        finite = per_class[np.isfinite(per_class)]
        metrics["dice"] = float(finite.mean()) if finite.size else 0.0
        return metrics


class _FloatLoss(nn.Module):
    """The loss in float32 even when the forward pass ran under bf16 autocast (softmax/Dice precision)."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits.float(), target)
