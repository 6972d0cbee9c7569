"""What the one training loop needs to know about a task, and nothing more.

The :class:`~medlearn.engine.trainer.Trainer` owns optimisation (AdamW, schedule, clipping,
autocast, checkpoints, early stopping, progress); a :class:`Task` owns the meaning of a batch: how it
becomes a loss, and how validation outputs become metrics. Classification, segmentation,
synthesis and the later tasks each implement this protocol instead of writing a loop.

Models may define ``training_loss(inputs, targets, criterion) -> (loss, outputs)`` when their
objective is more than ``criterion(model(inputs), targets)`` (auxiliary heads, synergic pairs);
``forward`` always returns the plain prediction, so inference, Grad-CAM and export see one tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass
class StepResult:
    """The loss of one training batch (already reduced) and how many samples it covered."""

    loss: torch.Tensor
    batch_size: int


@runtime_checkable
class Task(Protocol):
    """A learning problem the trainer can optimise and validate."""

    #: Name of the validation metric that selects the best checkpoint and drives early stopping.
    monitor: str
    #: Whether a larger (``"max"``) or smaller (``"min"``) ``monitor`` is better.
    monitor_mode: Literal["max", "min"]

    def training_step(self, model: nn.Module, batch: Any) -> StepResult:
        """Loss of one batch whose tensors are already on the training device."""
        ...

    def validation_step(self, model: nn.Module, batch: Any) -> Any:
        """Outputs of one validation batch (model in eval mode, no grad), kept for ``validation_metrics``."""
        ...

    def validation_metrics(self, outputs: list[Any]) -> dict[str, float]:
        """Reduce all validation outputs to named scalar metrics (must include ``monitor``)."""
        ...


def model_objective(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, criterion: nn.Module):
    """``(loss, outputs)`` using the model's own ``training_loss`` when it has one."""
    custom = getattr(model, "training_loss", None)
    if custom is not None:
        return custom(inputs, targets, criterion)
    outputs = model(inputs)
    return criterion(outputs, targets), outputs
