"""Image restoration (denoising, super-resolution) as a :class:`~medlearn.engine.task.Task`.

Training batches are ``(degraded, clean)`` patch pairs in unit intensity range; the loss is L1 (robust,
and sharper than MSE for restoration, as EDSR found) or ``l1+mse``. Validation restores whole held-out
slices, one per batch, and reports their mean PSNR and SSIM against the clean slice (``data_range`` 1,
see :mod:`medlearn.evaluation.image_quality`); the best checkpoint is the one with the highest PSNR.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medlearn.engine.task import StepResult, model_objective
from medlearn.errors import MedlearnError
from medlearn.evaluation.image_quality import psnr, ssim

LOSSES: tuple[str, ...] = ("l1", "mse", "l1+mse")


class RestorationLoss(nn.Module):
    """L1, MSE or their sum, always computed in float32 (also under bf16 autocast)."""

    def __init__(self, name: str = "l1") -> None:
        super().__init__()
        if name not in LOSSES:
            raise MedlearnError(f"unknown enhancement loss {name!r}; choose one of {', '.join(LOSSES)}")
        self.name = name

    def forward(self, restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        restored, clean = restored.float(), clean.float()
        if self.name == "l1":
            return F.l1_loss(restored, clean)
        if self.name == "mse":
            return F.mse_loss(restored, clean)
        return F.l1_loss(restored, clean) + F.mse_loss(restored, clean)


class EnhancementTask:
    """Batches are ``(degraded (B, 1, h, w), clean (B, 1, h*s, w*s))``; validation batches hold one slice."""

    monitor = "psnr"
    monitor_mode: Literal["max", "min"] = "max"

    def __init__(self, loss: str = "l1") -> None:
        self.criterion = RestorationLoss(loss)

    def training_step(self, model: nn.Module, batch) -> StepResult:
        degraded, clean = batch
        loss, _ = model_objective(model, degraded, clean, self.criterion)
        return StepResult(loss=loss, batch_size=int(degraded.shape[0]))

    def validation_step(self, model: nn.Module, batch) -> torch.Tensor:

        degraded, clean = batch
        restored = model(degraded).float().clamp(0.0, 1.0).cpu().numpy()
        reference = clean.float().cpu().numpy()
        values = [(psnr(r[0], c[0]), ssim(r[0], c[0])) for r, c in zip(restored, reference, strict=True)]
        return torch.tensor(values, dtype=torch.float64)

    def validation_metrics(self, outputs: list[torch.Tensor]) -> dict[str, float]:
        if not outputs:
            return {"psnr": float("nan"), "ssim": float("nan")}
        values = torch.cat(outputs).numpy()
        finite = np.where(np.isfinite(values[:, 0]), values[:, 0], np.nan)
        return {"psnr": float(np.nanmean(finite)), "ssim": float(values[:, 1].mean())}
