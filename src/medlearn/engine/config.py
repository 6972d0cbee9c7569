"""The task-agnostic training settings, and their YAML round trip.

Every task (classification, segmentation, ...) trains with the same :class:`TrainConfig`; what a
task needs beyond this (loss options, augmentation, patch size) lives in the task's own config.
``from_dict`` is strict — an unknown or mistyped key in a config file is an error, never ignored —
because a silently ignored ``learning_rate:`` would train with the default ``lr``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medlearn.errors import MedlearnError
from medlearn.utils.settings import coerce_setting

Precision = Literal["bf16", "fp32", "auto"]
PRECISIONS: tuple[str, ...] = ("bf16", "fp32", "auto")
#: Names users reach for from other frameworks, for the "did you mean" hint.
_SYNONYMS = {
    "learning_rate": "lr",
    "patience": "early_stopping_patience",
    "threads": "num_threads",
    "amp": "precision",
}


@dataclass
class TrainConfig:
    """How to optimise: epochs, batch, AdamW + warm-up/cosine schedule, stopping rules, speed knobs."""

    #: Epochs to train; with ``max_minutes``, a cap on what the budget affords. None: ``default_epochs``
    #: without a budget, and as many epochs as fill the budget with one (see :mod:`medlearn.engine.budget`).
    epochs: int | None = None
    #: The task's usual length, used when ``epochs`` is None and no budget is given (with a budget: the
    #: first guess of the schedule until the first epoch has been timed).
    default_epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    #: Linear warm-up length in epochs (fractional allowed); applied per optimisation step.
    warmup_epochs: float = 1.0
    #: Final learning rate of the cosine decay, as a fraction of ``lr``.
    min_lr_ratio: float = 0.01
    #: Max global gradient norm, or None for no clipping.
    grad_clip: float | None = 1.0
    #: Stop after this many epochs without improvement of the task's monitor (None = never).
    early_stopping_patience: int | None = None
    seed: int = 0
    #: Wall-clock training budget; the schedule is sized to fill it (see :mod:`medlearn.engine.budget`) and
    #: training stops cleanly after an epoch that exceeds it.
    max_minutes: float | None = None
    #: With ``max_minutes``: size the epochs and the cosine to the budget (True), or let the budget only
    #: interrupt a schedule of fixed length (False: train in chunks, each invocation with its own budget).
    fit_schedule_to_budget: bool = True
    channels_last: bool = False
    #: "bf16" autocast, "fp32", or "auto" (bf16 when the CPU has native bf16 support).
    precision: Precision = "auto"
    compile: bool = False
    #: torch intra-op threads; None leaves torch's default.
    num_threads: int | None = None
    #: Validate every this many epochs (and always after the last one).
    eval_every: int = 1

    def __post_init__(self) -> None:
        _check(self.epochs is None or self.epochs >= 1, "epochs", "must be at least 1 or null", self.epochs)
        _check(self.default_epochs >= 1, "default_epochs", "must be at least 1", self.default_epochs)
        _check(self.batch_size >= 1, "batch_size", "must be at least 1", self.batch_size)
        _check(math.isfinite(self.lr) and self.lr > 0, "lr", "must be a positive number", self.lr)
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0", self.weight_decay)
        _check(self.warmup_epochs >= 0, "warmup_epochs", "must be >= 0", self.warmup_epochs)
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be between 0 and 1", self.min_lr_ratio)
        _check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 or null", self.grad_clip)
        _check(
            self.early_stopping_patience is None or self.early_stopping_patience >= 1,
            "early_stopping_patience",
            "must be >= 1 or null",
            self.early_stopping_patience,
        )
        _check(self.max_minutes is None or self.max_minutes > 0, "max_minutes", "must be > 0", self.max_minutes)
        _check(
            self.precision in PRECISIONS,
            "precision",
            f"must be one of {', '.join(PRECISIONS)}",
            self.precision,
        )
        _check(self.num_threads is None or self.num_threads >= 1, "num_threads", "must be >= 1", self.num_threads)
        _check(self.eval_every >= 1, "eval_every", "must be at least 1", self.eval_every)

    @property
    def sized_by_budget(self) -> bool:
        """True when the time budget decides the number of epochs (and where the cosine ends)."""
        return self.max_minutes is not None and self.fit_schedule_to_budget

    @property
    def initial_epochs(self) -> int:
        """The schedule's length before any epoch has been timed."""
        return self.epochs if self.epochs is not None else self.default_epochs

    def to_dict(self) -> dict[str, Any]:
        """Plain values only, ready for ``yaml.safe_dump``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | Path | None = None) -> TrainConfig:
        """Build from a (YAML) mapping; unknown keys and wrongly typed values raise MedlearnError.

        ``source`` is the config file the values came from, named in error messages.
        """
        if not isinstance(values, dict):
            raise MedlearnError(f"training settings must be a mapping, not {type(values).__name__}", source)
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [key for key in values if key not in known]
        if unknown:
            hint = [_SYNONYMS[str(unknown[0])]] if str(unknown[0]) in _SYNONYMS else []
            hint = hint or difflib.get_close_matches(str(unknown[0]), known, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise MedlearnError(
                f"unknown training setting(s) {', '.join(map(repr, unknown))}{suggestion}; known: {', '.join(known)}",
                source,
            )
        try:
            return cls(
                **{key: coerce_setting(f"training setting {key}", value, hints[key]) for key, value in values.items()}
            )
        except MedlearnError as error:
            raise MedlearnError(error.problem, source or error.path) from None


def _check(ok: bool, name: str, problem: str, value: Any) -> None:
    if not ok:
        raise MedlearnError(f"training setting {name} {problem} (got {value!r})")
