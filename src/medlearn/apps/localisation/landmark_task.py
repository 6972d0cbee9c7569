"""Landmark localisation as a :class:`~medlearn.engine.task.Task`: the focal heat-map loss on patches, validation
by the mean radial error (mm) over whole validation images, so the checkpoint kept is the most accurate one."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from medlearn.apps.localisation.landmark_cases import LandmarkHeatmaps
from medlearn.engine.task import StepResult, model_objective
from medlearn.inference.sliding_window import Window, dense_probabilities
from medlearn.models.losses import centre_focal_loss


def locate_on_grid(
    model: nn.Module, heads: LandmarkHeatmaps, image: torch.Tensor, window: Window
) -> tuple[np.ndarray, np.ndarray]:
    """Landmark positions ``(K, d)`` (voxels of the prepared image) and peak heats ``(K,)``."""
    maps = dense_probabilities(model, image, window, activation=heads.activation).numpy()
    return heads.locate(maps)


class LocalisationTask:
    """Training batches are ``(images, heat maps)``; validation batches ``(image (1, C, *spatial), index)`` with
    the validation landmarks (planned voxels) and the grid's spacing held by the task."""

    monitor = "mean_error_mm"
    monitor_mode: Literal["max", "min"] = "min"

    def __init__(
        self, heads: LandmarkHeatmaps, window: Window, landmarks: list[np.ndarray], spacing: tuple[float, ...]
    ) -> None:
        self.heads = heads
        self.window = window
        self.landmarks = landmarks
        self.spacing = np.asarray(spacing, dtype=float)

    def training_step(self, model: nn.Module, batch) -> StepResult:
        images, heat = batch
        loss, _ = model_objective(model, images, heat, _FocalLoss())  # the tri-planar model scores a few slices
        return StepResult(loss=loss, batch_size=int(images.shape[0]))

    def validation_step(self, model: nn.Module, batch) -> torch.Tensor:
        image, index = batch
        found, _ = locate_on_grid(model, self.heads, image[0], self.window)
        truth = self.landmarks[int(index)]
        return torch.from_numpy(np.linalg.norm((found - truth) * self.spacing, axis=1))  # NaN where not marked

    def validation_metrics(self, outputs: list[torch.Tensor]) -> dict[str, float]:
        errors = torch.cat(outputs).numpy() if outputs else np.array([np.nan])
        finite = errors[np.isfinite(errors)]
        return {
            "mean_error_mm": float(finite.mean()) if finite.size else float("inf"),
            "success_4mm": float((finite <= 4.0).mean()) if finite.size else 0.0,
        }

    def channels_last_batch(self, batch):
        images = batch[0]
        layout = torch.channels_last if images.ndim == 4 else torch.channels_last_3d
        return (images.contiguous(memory_format=layout), *batch[1:])


class _FocalLoss(nn.Module):
    """:func:`centre_focal_loss` as the criterion a model's own ``training_loss`` may call."""

    def forward(self, logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
        return centre_focal_loss(logits, heat)[0]
