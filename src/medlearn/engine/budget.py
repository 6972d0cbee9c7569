"""What ``--max-minutes`` means, in every task: the schedule is sized so that training fills the budget.

A user who grants ten minutes expects them to be used, and a cosine schedule cut off by the clock
ends at a high learning rate. So, with a budget, the number of epochs is estimated from the epochs
timed so far (re-estimated after every epoch, so a slow first epoch or a faster machine does not
waste the budget) and the cosine is stretched or shrunk to end when the budget does:

- ``epochs`` not given ("fill"): as many epochs as the budget affords, more or fewer than the task's
  default (``default_epochs`` is only the first guess, used until the first epoch has been timed);
- ``epochs`` given ("cap"): the same, but never more than ``epochs``;
- ``fit_schedule_to_budget: false``: the budget only interrupts (the schedule keeps its length), for
  training in chunks that are resumed later.

Early stopping still ends a run sooner. With a fitted schedule the budget is the run's total training
time, so a resumed run finishes the schedule it planned instead of starting a new one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: Epoch durations averaged for the estimate (the most recent ones: the machine's load changes).
RECENT_EPOCHS = 5


@dataclass
class TimeBudget:
    """A wall-clock budget measured with ``clock`` (injectable, so tests use a fake clock, not sleeps)."""

    minutes: float | None
    clock: Callable[[], float]
    #: Seconds spent by earlier invocations of the same run that count against the budget.
    spent_before: float = 0.0
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def seconds(self) -> float:
        return math.inf if self.minutes is None else self.minutes * 60.0

    def spent(self) -> float:
        return self.spent_before + self.clock() - self.started

    def remaining(self) -> float:
        return self.seconds - self.spent()

    def exceeded(self) -> bool:
        return self.minutes is not None and self.remaining() < 0


def epochs_affordable(done: int, epoch_seconds: Sequence[float], remaining: float, cap: int | None) -> int:
    """Total epochs of a run that has finished ``done`` epochs (durations ``epoch_seconds``) with ``remaining``
    seconds of budget: the finished ones plus as many more as fit, at most ``cap``, never fewer than ``done``.

    The first epoch is left out of the average once others exist (it pays one-off costs: caches, kernels).
    """
    if not epoch_seconds:
        raise ValueError("time at least one epoch before estimating")
    timed = list(epoch_seconds[1:] if len(epoch_seconds) > 1 else epoch_seconds)[-RECENT_EPOCHS:]
    per_epoch = max(sum(timed) / len(timed), 1e-9)
    total = done + int(max(remaining, 0.0) // per_epoch)
    if cap is not None:
        total = min(total, cap)
    return max(done, total)
