"""Box localisation as a :class:`~medlearn.engine.task.Task`: binary cross-entropy of each slice's structure
labels, validation by the mean box IoU over whole validation volumes (the quantity the evaluation reports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from medlearn.apps.localisation.boxes import BoxCase, boxes_from_probabilities
from medlearn.engine.task import StepResult
from medlearn.evaluation.boxes import box_metrics

#: Slices classified per forward pass at validation and prediction.
SLICE_BATCH = 64


@torch.no_grad()
def slice_probabilities(model: nn.Module, slices: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Per axis, the structures' probabilities of every slice ``(S_a, K)``."""
    device = next(model.parameters()).device
    out = []
    for axis, stack in enumerate(slices):
        parts = []
        for start in range(0, stack.shape[0], SLICE_BATCH):
            chunk = stack[start : start + SLICE_BATCH].to(device)
            axes = torch.full((chunk.shape[0],), axis, dtype=torch.long, device=device)
            parts.append(torch.sigmoid(model(chunk, axes).float()).cpu())
        out.append(torch.cat(parts).numpy())
    return out


class BoxSliceTask:
    """Training batches are ``(slices, targets (B, K), axes (B,))``; validation batches a case index, the cases
    held by the task (their slices are already prepared)."""

    monitor = "iou"
    monitor_mode: Literal["max", "min"] = "max"

    def __init__(self, cases: Sequence[BoxCase], spacing: Sequence[float]) -> None:
        self.cases = cases
        self.spacing = tuple(float(s) for s in spacing)

    def training_step(self, model: nn.Module, batch) -> StepResult:
        slices, targets, axes = batch
        loss = functional.binary_cross_entropy_with_logits(model(slices, axes).float(), targets.float())
        return StepResult(loss=loss, batch_size=int(slices.shape[0]))

    def validation_step(self, model: nn.Module, batch) -> torch.Tensor:
        case = self.cases[int(batch)]
        found = boxes_from_probabilities(slice_probabilities(model, case.slices))
        scores = [
            box_metrics(box, truth, self.spacing)["iou"]
            for box, truth in zip(found, case.boxes, strict=True)
            if truth is not None
        ]
        return torch.tensor(scores, dtype=torch.float64)

    def validation_metrics(self, outputs: list[torch.Tensor]) -> dict[str, float]:
        values = torch.cat(outputs).numpy() if outputs else np.zeros(0)
        return {"iou": float(values.mean()) if values.size else 0.0}
