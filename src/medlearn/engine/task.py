"""What the one training loop needs to know about a task, and nothing more.

The :class:`~medlearn.engine.trainer.Trainer` owns optimisation (AdamW, schedule, clipping,
autocast, checkpoints, early stopping, progress); a :class:`Task` owns the meaning of a batch: how it
becomes a loss, and how validation outputs become metrics. Classification, segmentation,
synthesis and the later tasks each implement this protocol instead of writing a loop.

A task whose model has several parts optimised in turn (a GAN's discriminator and generator) is a
:class:`StagedTask` and says so (``staged = True``; the trainer never guesses from the methods a task
happens to define): it builds one optimiser per part and calls ``optimize(name, loss)`` inside its
``training_step`` for each stage; the trainer still owns backward, clipping, stepping, schedules,
checkpoints and stopping, so there is still one loop.

Optional hooks a task may define, each used only if present:

- ``state_dict() -> dict`` / ``load_state_dict(state)``: the task's own progress (a GAN's position in its
  critic/generator cycle, a sampler's queue), saved in every checkpoint so a resume is exact;
- ``channels_last_batch(batch) -> batch``: the batch with the tensors the model convolves (images) in
  channels-last layout, called only when the config asks for channels-last; targets, displacement fields
  and other tensors stay as they are. Without the hook no batch tensor is converted.

Models may define ``training_loss(inputs, targets, criterion) -> (loss, outputs)`` when their
objective is more than ``criterion(model(inputs), targets)`` (auxiliary heads, synergic pairs);
``forward`` always returns the plain prediction, so inference, Grad-CAM and export see one tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass
class StepResult:
    """The loss of one training batch (already reduced) and how many samples it covered."""

    loss: torch.Tensor
    batch_size: int
    #: Further per-batch values to average over the epoch into the history as ``train_<name>``
    #: (a GAN's generator and discriminator losses, a gradient penalty).
    extras: dict[str, float] = field(default_factory=dict)


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


#: ``optimize(stage, loss)``: backward ``loss`` and step the optimiser of ``stage`` (given to staged tasks).
Optimize = Callable[[str, torch.Tensor], None]


@runtime_checkable
class StagedTask(Task, Protocol):
    """A task that optimises several parts of its model in turn, each with its own optimiser."""

    #: Declares the task staged (the trainer checks this flag, not the methods).
    staged: bool

    def configure_optimizers(self, model: nn.Module, config: Any) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per stage name (in the order the stages run)."""
        ...

    def training_step(self, model: nn.Module, batch: Any, optimize: Optimize) -> StepResult:  # type: ignore[override]
        """Run the batch's stages, calling ``optimize(stage, loss)`` for each; the result's loss is only logged."""
        ...


def is_staged(task: Any) -> bool:
    """True when ``task`` declares itself staged (``staged = True``), which then requires ``configure_optimizers``."""
    staged = bool(getattr(task, "staged", False))
    if staged and not callable(getattr(task, "configure_optimizers", None)):
        raise TypeError(f"{type(task).__name__} declares staged = True but has no configure_optimizers()")
    return staged


def model_objective(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, criterion: nn.Module):
    """``(loss, outputs)`` using the model's own ``training_loss`` when it has one."""
    custom = getattr(model, "training_loss", None)
    if custom is not None:
        return custom(inputs, targets, criterion)
    outputs = model(inputs)
    return criterion(outputs, targets), outputs
