"""The default optimiser (AdamW without decay on biases and norms) and its per-step learning-rate curve.

Weight decay on biases and normalisation scales only shrinks them towards zero without
regularising anything useful, so they get none. The learning rate warms up linearly (large
early steps with un-adapted Adam moments destabilise batch-norm networks), then follows a
cosine down to ``min_lr_ratio * lr``. Both are stepped per optimisation step, so fractional
warm-up epochs and short runs behave sensibly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from medlearn.engine.config import TrainConfig

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weights; biases, 1-D params and normalisation-layer params without decay."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if is_norm or param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def default_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with :func:`parameter_groups`."""
    return torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the base lr for optimisation step ``step`` (0-based).

    Warm-up: ``(step + 1) / warmup_steps`` for ``step < warmup_steps`` (the first step already
    moves the weights). Then ``min + (1 - min) * (1 + cos(pi * p)) / 2`` with
    ``p = (step - warmup_steps) / (total_steps - warmup_steps)`` clipped to [0, 1].
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class WarmupCosine:
    """The curve as a callable object: ``LambdaLR`` saves its fields with the scheduler state, so a run whose
    schedule was re-sized (fitted to a time budget) resumes on the same curve."""

    warmup_steps: int
    total_steps: int
    min_lr_ratio: float

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, self.warmup_steps, self.total_steps, self.min_lr_ratio)


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, min_lr_ratio: float
) -> LambdaLR:
    """A scheduler to ``step()`` after every optimiser step (its state: step count, base lrs, curve fields)."""
    return LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_lr_ratio))


def resize_schedule(scheduler: LambdaLR, total_steps: int) -> None:
    """Stretch or shrink the cosine of a running schedule to end after ``total_steps`` steps."""
    for curve in scheduler.lr_lambdas:
        if isinstance(curve, WarmupCosine):
            curve.total_steps = total_steps


def schedule_for(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int, epochs: int | None = None
) -> LambdaLR:
    """The warm-up + cosine schedule of ``config`` for a loader of ``steps_per_epoch`` batches, over ``epochs``
    (default: ``config.initial_epochs``)."""
    return warmup_cosine_schedule(
        optimizer,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        total_steps=(epochs or config.initial_epochs) * steps_per_epoch,
        min_lr_ratio=config.min_lr_ratio,
    )
