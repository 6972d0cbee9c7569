"""Denoising reconstruction as a :class:`~medlearn.engine.task.Task`: unsupervised pre-training of an encoder.

The input is corrupted (additive Gaussian noise and/or masking noise, as in Vincent et al. 2010:
a random share of pixels set to zero), the model reconstructs it, and the loss is the mean squared
error to the *clean* image. Labels are never used: a batch may be images alone or ``(images, ...)``
tuples (the first element is taken), so the classification datasets serve as they are.

Training corruption draws from torch's global generator, which the engine reseeds every epoch
(reproducible, exact on resume). Validation corruption is fixed: batch ``i`` of every validation
pass is corrupted with a generator seeded from ``(validation_seed, i)``, so the validation loss
of two epochs compares the same noisy inputs.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.engine.performance import to_channels_last
from medlearn.engine.task import StepResult
from medlearn.errors import MedlearnError


def images_of(batch: Any) -> torch.Tensor:
    """The image tensor of a batch: the batch itself, or the first element of a tuple/list."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(f"a reconstruction batch must be images or (images, ...), got {type(batch).__name__}")


class DenoisingReconstructionTask:
    """MSE between ``model(corrupt(x))`` and ``x``; validation metrics ``loss`` (MSE, monitored, min) and ``psnr``.

    ``noise_std``: standard deviation of the additive Gaussian noise, in the units of the
    (normalised) images; ``mask_fraction``: share of pixels zeroed (the same pixels in every
    channel). Either may be 0, not both.
    """

    monitor = "loss"
    monitor_mode: Literal["max", "min"] = "min"

    def __init__(self, noise_std: float = 0.3, mask_fraction: float = 0.25, validation_seed: int = 0) -> None:
        if noise_std < 0 or not 0 <= mask_fraction < 1:
            raise MedlearnError(
                f"noise_std must be >= 0 and mask_fraction in [0, 1) (got {noise_std}, {mask_fraction})"
            )
        if noise_std == 0 and mask_fraction == 0:
            raise MedlearnError("a denoising task needs noise_std > 0 or mask_fraction > 0")
        self.noise_std = float(noise_std)
        self.mask_fraction = float(mask_fraction)
        self.validation_seed = int(validation_seed)
        self._validation_batch = 0

    def corrupt(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A corrupted copy of ``images`` (``(N, C, *spatial)``); ``generator`` None uses torch's global one."""
        clean = images.float()
        noisy = clean
        if self.noise_std > 0:
            noise = torch.randn(clean.shape, generator=generator, device="cpu").to(clean.device)
            noisy = noisy + self.noise_std * noise
        if self.mask_fraction > 0:
            shape = (clean.shape[0], 1, *clean.shape[2:])
            keep = torch.rand(shape, generator=generator, device="cpu").to(clean.device) >= self.mask_fraction
            noisy = noisy * keep
        if images.is_contiguous(memory_format=torch.channels_last) and images.dim() == 4:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        return noisy

    def channels_last_batch(self, batch: Any) -> Any:
        """The images channels-last (the target is the same tensor, so it follows)."""
        if isinstance(batch, torch.Tensor):
            return to_channels_last(batch)
        return type(batch)([to_channels_last(batch[0]), *batch[1:]])

    def training_step(self, model: nn.Module, batch: Any) -> StepResult:
        images = images_of(batch)
        reconstruction = model(self.corrupt(images))
        loss = F.mse_loss(reconstruction.float(), images.float())
        return StepResult(loss=loss, batch_size=int(images.shape[0]))

    def validation_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images = images_of(batch)
        generator = torch.Generator().manual_seed(self.validation_seed * 1_000_003 + self._validation_batch)
        self._validation_batch += 1
        reconstruction = model(self.corrupt(images, generator)).float()
        clean = images.float()
        squared = ((reconstruction - clean) ** 2).flatten(1).sum(1)
        peak = clean.flatten(1).amax(1) - clean.flatten(1).amin(1)
        return squared.cpu(), torch.full_like(squared, clean[0].numel()).cpu(), peak.cpu()

    def validation_metrics(self, outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        self._validation_batch = 0  # the next validation pass repeats the same corruption
        squared = torch.cat([o[0] for o in outputs]).double()
        counts = torch.cat([o[1] for o in outputs]).double()
        peaks = torch.cat([o[2] for o in outputs]).double()
        per_image = squared / counts
        psnr = 10 * torch.log10(peaks.clamp_min(1e-12) ** 2 / per_image.clamp_min(1e-12))
        return {"loss": float(squared.sum() / counts.sum()), "psnr": float(psnr.mean())}
