"""Detection as a :class:`~medlearn.engine.task.Task`: the head's loss on patches, validation by the FROC
score (CPM) over whole validation images, so the checkpoint kept is the one that finds most objects at few
false positives per image, the quantity a user reads in the evaluation."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from medlearn.apps.detection.heads import DetectionHead
from medlearn.engine.task import StepResult
from medlearn.evaluation.detection import (
    ImageMatch,
    Targets,
    average_precision,
    competition_performance_metric,
    froc_curve,
    match_detections,
)
from medlearn.inference.sliding_window import Window, dense_probabilities


def detect_on_grid(
    model: nn.Module,
    head: DetectionHead,
    image: torch.Tensor,
    window: Window,
    *,
    max_candidates: int,
    tta: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates ``(points, scores, radii)`` in voxels of a prepared ``(C, *spatial)`` image."""
    maps = dense_probabilities(model, image, window, tta=tta, activation=head.activation).numpy()
    return head.candidates(maps, max_candidates=max_candidates)


class DetectionTask:
    """Training batches are the head's batch items; validation batches are ``(image (1, C, *spatial), index)``
    with the validation targets held by the task (they are not tensors)."""

    monitor = "cpm"
    monitor_mode: Literal["max", "min"] = "max"

    def __init__(self, head: DetectionHead, window: Window, targets: list[Targets], *, max_candidates: int) -> None:
        self.head = head
        self.window = window
        self.targets = targets
        self.max_candidates = max_candidates

    def training_step(self, model: nn.Module, batch) -> StepResult:
        images = batch[0]
        loss = self.head.loss(model(images), tuple(batch))
        return StepResult(loss=loss, batch_size=int(images.shape[0]))

    def validation_step(self, model: nn.Module, batch) -> ImageMatch:
        image, index = batch
        points, scores, _ = detect_on_grid(model, self.head, image[0], self.window, max_candidates=self.max_candidates)
        return match_detections(points, scores, self.targets[int(index)])

    def validation_metrics(self, outputs: list[ImageMatch]) -> dict[str, float]:
        if not outputs:
            return {"cpm": 0.0}
        curve = froc_curve(outputs)
        cpm = competition_performance_metric(curve)
        return {
            "cpm": float(cpm) if cpm == cpm else 0.0,  # NaN (no validation objects) would never improve
            "average_precision": float(average_precision(outputs)),
        }

    def channels_last_batch(self, batch):
        return (batch[0].contiguous(memory_format=_channels_last(batch[0])), *batch[1:])


def _channels_last(images: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if images.ndim == 4 else torch.channels_last_3d
