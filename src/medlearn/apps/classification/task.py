"""Image-level classification as a :class:`~medlearn.engine.task.Task`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medlearn.engine.performance import to_channels_last
from medlearn.engine.task import StepResult, model_objective
from medlearn.evaluation.classification import classification_metrics


def inverse_frequency_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """Class weights ``N / (K * count_k)`` so that each class contributes equally to the loss."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    counts[counts == 0] = 1.0
    return torch.tensor(counts.sum() / (num_classes * counts), dtype=torch.float32)


class ClassificationTask:
    """Cross-entropy (optionally class-weighted, label-smoothed) on ``(image, label)`` batches.

    Validation collects logits so the metrics (and later temperature scaling) see every case.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        positive: int = 1,
        monitor: str = "loss",
    ) -> None:
        self.num_classes = num_classes
        self.positive = positive
        self.monitor = monitor
        self.monitor_mode: Literal["max", "min"] = "min" if monitor == "loss" else "max"
        self.criterion = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

    def channels_last_batch(self, batch):
        """The images in channels-last layout (the labels are not convolved)."""
        images, labels = batch
        return to_channels_last(images), labels

    def training_step(self, model: nn.Module, batch) -> StepResult:
        images, labels = batch
        loss, _ = model_objective(model, images, labels, self.criterion)
        return StepResult(loss=loss, batch_size=int(labels.shape[0]))

    def validation_step(self, model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        return model(images).float().cpu(), labels.cpu()

    def validation_metrics(self, outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:

        logits = torch.cat([o[0] for o in outputs])
        labels = torch.cat([o[1] for o in outputs])
        probs = torch.softmax(logits, dim=1).numpy()
        metrics = classification_metrics(labels.numpy(), probs, positive=self.positive)
        metrics["loss"] = float(F.cross_entropy(logits, labels))
        metrics.pop("n", None)  # a count, not a quality: keep it out of curves and epoch lines
        return {k: float(v) for k, v in metrics.items()}
