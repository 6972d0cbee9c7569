"""What a person watching training sees, and what ``train.log`` keeps.

In a terminal: a live Rich bar per epoch (epoch i/N, batches, running loss, last validation
monitor, images/s, ETA). Everywhere: one summary line per epoch, printed and logged. When stdout
is not a terminal (CI, ``nohup``, pipes) there is no live bar — only the per-epoch lines, so logs
stay readable. ``quiet`` (tests, library use) prints nothing; the lines still reach the log.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

log = logging.getLogger("medlearn.train")

#: History fields that are measurements of speed, not of learning (differ between identical runs).
TIMING_FIELDS = ("seconds", "samples_per_second")


class TrainingProgress:
    """Per-batch live display and per-epoch summary lines for one ``fit``."""

    def __init__(self, *, quiet: bool = False, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or Console(soft_wrap=True)
        self.quiet = quiet
        self.live = not quiet and (self.console.is_terminal if live is None else live)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._epochs = 0
        self._monitor: str | None = None
        self._last_val = ""
        self._samples = 0
        self._loss_sum = 0.0
        self._started = 0.0

    def start(self, total_epochs: int, monitor: str | None = None) -> None:
        self._epochs = total_epochs
        self._monitor = monitor
        if self.live and self._bar is None:
            self._bar = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[val]}"),
                TextColumn("{task.fields[speed]} img/s"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()

    def set_total_epochs(self, total_epochs: int) -> None:
        """The schedule was re-sized (to a time budget): later lines and the bar show the new total."""
        self._epochs = total_epochs

    def start_epoch(self, epoch: int, batches: int) -> None:
        self._samples, self._loss_sum = 0, 0.0
        self._started = time.perf_counter()
        if self._bar is not None:
            if self._task is not None:
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task(
                "train",
                total=batches,
                epoch=epoch,
                epochs=self._epochs,
                loss="-",
                val=self._last_val,
                speed="-",
            )

    def advance(self, samples: int, loss: float) -> None:
        """One training batch of ``samples`` images with mean ``loss`` is done."""
        self._samples += samples
        self._loss_sum += loss * samples
        if self._bar is not None and self._task is not None:
            elapsed = max(time.perf_counter() - self._started, 1e-9)
            self._bar.update(
                self._task,
                advance=1,
                loss=f"{self._loss_sum / max(self._samples, 1):.4f}",
                speed=f"{self._samples / elapsed:.0f}",
            )

    def end_epoch(
        self,
        row: Mapping[str, Any],
        *,
        best: bool = False,
        eta_seconds: float | None = None,
        suffix: str | None = None,
    ) -> None:
        """Print and log the epoch's summary line (``suffix``: e.g. how much of the time budget is used)."""
        monitor_key = f"val_{self._monitor}" if self._monitor else None
        if monitor_key and monitor_key in row:
            self._last_val = f"{monitor_key} {_number(row[monitor_key])}"
        line = format_epoch_line(row, self._epochs, best=best, eta_seconds=eta_seconds)
        self.note(f"{line}  {suffix}" if suffix else line)

    def note(self, text: str, level: int = logging.INFO) -> None:
        """A line for both the console (unless quiet) and the log."""
        log.log(level, text)
        if not self.quiet:
            target = self._bar.console if self._bar is not None else self.console
            target.print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar, self._task = None, None


def format_epoch_line(
    row: Mapping[str, Any], total_epochs: int, *, best: bool = False, eta_seconds: float | None = None
) -> str:
    """``epoch 3/10  train_loss 0.4123  val_auc 0.9132  lr 2.99e-04  2.1s  980 img/s  eta 0:00:15  *best``."""
    parts = [f"epoch {row.get('epoch', '?')}/{total_epochs}"]
    for key, value in row.items():
        if key in ("epoch", "lr", *TIMING_FIELDS):
            continue
        parts.append(f"{key} {_number(value)}")
    if "lr" in row:
        parts.append(f"lr {row['lr']:.2e}")
    if "seconds" in row:
        parts.append(f"{row['seconds']:.1f}s")
    if "samples_per_second" in row:
        parts.append(f"{row['samples_per_second']:.0f} img/s")
    if eta_seconds is not None and eta_seconds > 0:
        parts.append(f"eta {datetime.timedelta(seconds=round(eta_seconds))}")
    if best:
        parts.append("*best")
    return "  ".join(parts)


def _number(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)
