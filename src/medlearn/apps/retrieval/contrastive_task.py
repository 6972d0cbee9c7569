"""Self-supervised contrastive training (SimCLR) as a :class:`~medlearn.engine.task.Task`: the one trainer runs it.

A batch is two views ``(B, C, H, W)`` of the same ``B`` images; the loss is NT-Xent on the model's projections.
Validation uses fixed views of the held-out images and scores, over the whole held-out set at once (a per-batch
score would depend on the batch size): the NT-Xent loss (``loss``, the monitor) and ``view_top1``, the share of
first views whose nearest second view by the retrieval features (before the projection) is their own partner,
the retrieval task in miniature.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.engine.performance import to_channels_last
from medlearn.engine.task import StepResult
from medlearn.models.embedding import nt_xent_loss


class ContrastiveTask:
    """See the module docstring."""

    monitor = "loss"
    monitor_mode: Literal["max", "min"] = "min"

    def __init__(self, temperature: float = 0.2) -> None:
        self.temperature = float(temperature)

    def channels_last_batch(self, batch):
        return tuple(to_channels_last(view) for view in batch)

    def training_step(self, model: nn.Module, batch) -> StepResult:
        first, second = batch
        projected = model(torch.cat([first, second]))
        half = len(first)
        loss = nt_xent_loss(projected[:half], projected[half:], self.temperature)
        return StepResult(loss=loss, batch_size=half)

    def validation_step(self, model: nn.Module, batch) -> tuple[torch.Tensor, ...]:
        captured: list[torch.Tensor] = []
        handle = model.feature_layer.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            projections = [model(view).float().cpu() for view in batch]
        finally:
            handle.remove()
        return (*projections, *(c.float().cpu() for c in captured))

    def validation_metrics(self, outputs: list[tuple[torch.Tensor, ...]]) -> dict[str, float]:
        z1, z2, h1, h2 = (torch.cat([o[i] for o in outputs]) for i in range(4))
        similarity = F.normalize(h1, dim=1) @ F.normalize(h2, dim=1).T
        hits = similarity.argmax(dim=1) == torch.arange(len(h1))
        return {"loss": float(nt_xent_loss(z1, z2, self.temperature)), "view_top1": float(hits.float().mean())}
