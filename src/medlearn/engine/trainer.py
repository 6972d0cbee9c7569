"""The one training loop every medlearn task uses.

The :class:`Trainer` owns everything about *optimising*: device placement, AdamW with warm-up +
cosine per step, gradient clipping, bf16 autocast, channels-last, optional ``torch.compile``,
per-epoch reseeding, validation, best/last checkpoints, early stopping, a time budget that sizes the
schedule (:mod:`medlearn.engine.budget`), exact resume, progress and logs. What a batch *means* — loss
and metrics — is the :class:`~medlearn.engine.task.Task`'s business, so classification, segmentation and later tasks
share this loop instead of each growing its own. A :class:`~medlearn.engine.task.StagedTask` (a GAN)
brings one optimiser per stage and asks the trainer to step each in turn; ``epoch_hooks`` run after
each epoch's checkpoint (sample grids of a generator).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from medlearn.engine.budget import RECENT_EPOCHS, TimeBudget, epochs_affordable
from medlearn.engine.checkpoint import load_checkpoint, recover_checkpoint, save_checkpoint
from medlearn.engine.config import TrainConfig
from medlearn.engine.performance import (
    autocast_context,
    maybe_compile,
    resolve_precision,
    set_threads,
    to_channels_last,
)
from medlearn.engine.progress import TrainingProgress
from medlearn.engine.reproducibility import loader_generators, rng_state, seed_epoch, set_rng_state
from medlearn.engine.rundir import RunDir
from medlearn.engine.schedule import default_optimizer, resize_schedule, schedule_for
from medlearn.engine.task import StepResult, Task, is_staged
from medlearn.errors import MedlearnError

COMPLETED = "completed"
EARLY_STOPPING = "early stopping"
TIME_BUDGET = "time budget"

OptimizerFactory = Callable[[nn.Module, TrainConfig], torch.optim.Optimizer]
#: Called after each epoch's checkpoint with the epoch number and the (uncompiled) model.
EpochHook = Callable[[int, nn.Module], None]
#: The stage name of a task with a single optimiser.
SINGLE_STAGE = "model"


@dataclass
class FitResult:
    """How training ended. ``history`` has one row per epoch: ``epoch``, ``train_loss``,
    ``val_<metric>`` (on validation epochs), ``lr``, ``seconds``, ``samples_per_second``."""

    best_metric: float | None
    best_epoch: int | None
    epochs_run: int
    history: list[dict[str, Any]]
    stopped_reason: str
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None


@dataclass
class BestTracker:
    """The best value of the monitored metric so far and the epoch it was reached."""

    mode: Literal["max", "min"]
    best: float | None = None
    best_epoch: int | None = None

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value`` of ``epoch``; True when it beats the best so far (NaN never does)."""
        if math.isnan(value):
            return False
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch = value, epoch
        return better

    def stale_for(self, epoch: int) -> int:
        """Epochs since the best one (0 while nothing has been validated)."""
        return 0 if self.best_epoch is None else epoch - self.best_epoch


class Trainer:
    """Fit ``model`` on ``task`` with ``config``, writing checkpoints, metrics and logs to ``run_dir``.

    ``generator``: extra torch generators to reseed each epoch (the train loader's own generator
    and its sampler's are found automatically). ``log``: a :class:`TrainingProgress` (default: a
    live bar in a terminal, plain lines otherwise; ``quiet=True`` prints nothing). ``epoch_hooks``:
    callables run after every epoch (e.g. writing a generator's sample grid). ``clock``: seconds for the
    time budget and epoch durations (injectable so budget behaviour is tested with a fake clock). ``device``:
    where to train (default: CUDA when available, else the CPU).
    """

    def __init__(
        self,
        task: Task,
        model: nn.Module,
        train_loader: Any,
        val_loader: Any | None,
        config: TrainConfig,
        run_dir: RunDir | str | Path,
        *,
        optimizer_factory: OptimizerFactory | None = None,
        log: TrainingProgress | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        quiet: bool = False,
        epoch_hooks: Sequence[EpochHook] = (),
        clock: Callable[[], float] = time.perf_counter,
        device: torch.device | str | None = None,
    ) -> None:
        self.task = task
        self.clock = clock
        self.config = config
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.device = torch.device(device) if device is not None else default_device()
        self.precision = resolve_precision(config.precision, self.device)
        self.model = model.to(self.device)
        if config.channels_last:
            to_channels_last(self.model)
        self.forward_model = maybe_compile(self.model, config.compile)
        self.staged = is_staged(task)
        if self.staged:
            self.optimizers = dict(task.configure_optimizers(self.model, config))
        else:
            self.optimizers = {SINGLE_STAGE: (optimizer_factory or default_optimizer)(self.model, config)}
        self.steps_per_epoch = _batches_per_epoch(train_loader)
        #: The schedule's length: ``config.epochs``, the task default, or what the time budget affords.
        self.planned_epochs = config.initial_epochs
        #: How the budget sized the schedule (recorded in the run's config), once it has.
        self.budget_schedule: dict[str, Any] | None = None
        self.schedulers = {
            name: schedule_for(optimizer, config, self.steps_per_epoch) for name, optimizer in self.optimizers.items()
        }
        self.epoch_hooks = list(epoch_hooks)
        self.generators = _distinct([*loader_generators(train_loader), *_as_list(generator)])
        self.progress = log or TrainingProgress(quiet=quiet)
        self.tracker = BestTracker(task.monitor_mode)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The first (for single-stage tasks: the only) optimiser."""
        return next(iter(self.optimizers.values()))

    @property
    def scheduler(self):
        """The first (for single-stage tasks: the only) learning-rate schedule."""
        return next(iter(self.schedulers.values()))

    # -- public --------------------------------------------------------------------------------
    def fit(self, resume: bool | str | Path = False) -> FitResult:
        """Train for the planned epochs (or stop earlier); ``resume`` continues from the last checkpoint of the
        run directory (or from the checkpoint directory given)."""
        previous_threads = set_threads(self.config.num_threads)
        try:
            self._prepare(resume)
            with self.run.log_to_file():
                self.progress.start(self.planned_epochs, self.task.monitor if self.val_loader is not None else None)
                try:
                    self.progress.note(self._setup_line(resume))
                    reason = self._loop()
                    self.progress.note(self._ending_line(reason))
                finally:
                    self.progress.close()
        finally:
            set_threads(previous_threads)
        has_best = self.run.best_checkpoint.exists()
        return FitResult(
            best_metric=self.tracker.best,
            best_epoch=self.tracker.best_epoch,
            epochs_run=self.epoch,
            history=list(self.history),
            stopped_reason=reason,
            best_checkpoint=self.run.best_checkpoint if has_best else None,
            last_checkpoint=self.run.last_checkpoint,
        )

    # -- the loop ------------------------------------------------------------------------------
    def _loop(self) -> str:
        spent_before = sum(row.get("seconds", 0.0) for row in self.history) if self.config.sized_by_budget else 0.0
        budget = TimeBudget(self.config.max_minutes, self.clock, spent_before)
        reason = self._stop_reason(self.epoch, over_budget=False) if self.epoch else None
        session_seconds: list[float] = []
        while reason is None:
            epoch = self.epoch + 1
            started = self.clock()
            seed_epoch(self.config.seed, epoch, self.generators)
            train = self._train_epoch(epoch)
            over_budget = budget.exceeded()
            row: dict[str, Any] = {"epoch": epoch, "train_loss": train.pop("train_loss")}
            lr, speed = train.pop("lr"), train.pop("speed")
            row.update(train)  # per-stage losses of staged tasks
            improved = self._validate_into(row, epoch, force=over_budget)
            row.update(lr=lr, seconds=self.clock() - started, samples_per_second=speed)
            self.history.append(row)
            self.epoch = epoch
            if self.config.max_minutes is not None:
                self._apply_budget(budget, epoch, row["seconds"])
            self._save(row, improved)
            for hook in self.epoch_hooks:
                hook(epoch, self.model)
            session_seconds.append(row["seconds"])
            remaining = self.planned_epochs - epoch
            self.progress.end_epoch(
                row, best=improved, eta_seconds=remaining * _mean(session_seconds), suffix=_budget_text(budget)
            )
            reason = self._stop_reason(epoch, budget.exceeded())
        return reason

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        self.forward_model.train()
        self.progress.start_epoch(epoch, self.steps_per_epoch)
        started = self.clock()
        loss_sum, samples, lr = 0.0, 0, self.optimizer.param_groups[0]["lr"]
        extras: dict[str, float] = {}
        for step, batch in enumerate(self.train_loader, start=1):
            batch = self._to_device(batch)
            lr = self.optimizer.param_groups[0]["lr"]
            stepped: list[str] = []
            result = self._train_step(batch, epoch, step, stepped)
            loss = float(result.loss.detach())
            for stage in stepped:  # a stage skipped this batch (a GAN's generator) keeps its schedule position
                self.schedulers[stage].step()
            loss_sum += loss * result.batch_size
            samples += result.batch_size
            for name, value in result.extras.items():
                extras[name] = extras.get(name, 0.0) + float(value) * result.batch_size
            self.progress.advance(result.batch_size, loss)
        if samples == 0:
            raise MedlearnError("the training data loader yielded no batches (too few samples for the batch size?)")
        seconds = max(self.clock() - started, 1e-9)
        means = {f"train_{name}": total / samples for name, total in extras.items()}
        return {"train_loss": loss_sum / samples, **means, "lr": lr, "speed": samples / seconds}

    def _train_step(self, batch: Any, epoch: int, step: int, stepped: list[str]) -> StepResult:
        """One batch: the task's loss backpropagated and stepped (staged tasks step each stage themselves);
        the stages stepped are appended to ``stepped``."""

        def optimize(stage: str, loss: torch.Tensor) -> None:
            if stage not in self.optimizers:
                raise KeyError(f"the task stepped stage {stage!r} but configured only {sorted(self.optimizers)}")
            optimizer = self.optimizers[stage]
            self._check_finite(loss, epoch, step, stage)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, enabled=False):  # a staged task's stages run inside autocast
                loss.backward()
            if self.config.grad_clip is not None:
                params = [p for group in optimizer.param_groups for p in group["params"]]
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            optimizer.step()
            stepped.append(stage)

        with autocast_context(self.precision, self.device):
            if self.staged:
                return self.task.training_step(self.forward_model, batch, optimize)
            result = self.task.training_step(self.forward_model, batch)
        optimize(SINGLE_STAGE, result.loss)
        return result

    def _to_device(self, batch: Any) -> Any:
        """The batch on the training device, its image tensors channels-last where the task marks them."""
        batch = move_to_device(batch, self.device)
        mark = getattr(self.task, "channels_last_batch", None)
        return mark(batch) if self.config.channels_last and callable(mark) else batch

    def _check_finite(self, loss: torch.Tensor, epoch: int, step: int, stage: str) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            where = f" ({stage})" if self.staged else ""
            raise MedlearnError(
                f"training loss{where} became {value} at epoch {epoch}, batch {step}; the last good checkpoint "
                f"is kept — lower the learning rate (lr={self.config.lr:g}) or check the data",
                self.run.path,
            )

    def _validate_into(self, row: dict[str, Any], epoch: int, *, force: bool) -> bool:
        """Validate when due (every ``eval_every`` epochs, the last one, or ``force``); True if best so far.

        Without a validation loader every epoch counts as the best, so ``best`` mirrors ``last``.
        """
        if self.val_loader is None:
            self.tracker.best_epoch = epoch
            return True
        if not (force or epoch % self.config.eval_every == 0 or epoch == self.planned_epochs):
            return False
        metrics = self._validate()
        row.update({f"val_{name}": value for name, value in metrics.items()})
        return self.tracker.update(metrics[self.task.monitor], epoch)

    def _validate(self) -> dict[str, float]:
        self.model.eval()
        self.forward_model.eval()
        outputs = []
        with torch.no_grad(), autocast_context(self.precision, self.device):
            for batch in self.val_loader:
                batch = self._to_device(batch)
                outputs.append(to_cpu_float(self.task.validation_step(self.forward_model, batch)))
        metrics = self.task.validation_metrics(outputs)
        if self.task.monitor not in metrics:
            raise ValueError(f"validation_metrics returned {sorted(metrics)} without the monitor {self.task.monitor!r}")
        return {name: float(value) for name, value in metrics.items()}

    def _apply_budget(self, budget: TimeBudget, epoch: int, epoch_seconds: float) -> None:
        """After each epoch: size the schedule to the remaining budget (if it decides the epochs), and say so
        when the budget cannot hold even one epoch."""
        if epoch == 1 and epoch_seconds > budget.seconds:
            five_epochs = math.ceil(5 * epoch_seconds / 6) / 10  # minutes, rounded up to a tenth
            self.progress.note(
                f"the time budget ({self.config.max_minutes:g} min) is shorter than one epoch ({epoch_seconds:.1f} s): "
                f"training stopped after epoch 1, whose checkpoint is kept and usable; --max-minutes {five_epochs:g} "
                "would train about 5 epochs",
                logging.WARNING,
            )
        if not self.config.sized_by_budget:
            return
        seconds = [row["seconds"] for row in self.history]
        planned = epochs_affordable(epoch, seconds, budget.remaining(), self.config.epochs)
        if planned == self.planned_epochs:
            return
        first = self.budget_schedule is None
        previous, self.planned_epochs = self.planned_epochs, planned
        for scheduler in self.schedulers.values():
            resize_schedule(scheduler, planned * self.steps_per_epoch)
        self.progress.set_total_epochs(planned)
        self.budget_schedule = {
            "epochs": planned,
            "sized_by": "time budget" if self.config.epochs is None or planned < self.config.epochs else "epochs",
            "max_minutes": self.config.max_minutes,
            "epoch_seconds": round(sum(seconds[-RECENT_EPOCHS:]) / len(seconds[-RECENT_EPOCHS:]), 3),
            "after_epoch": epoch,
        }
        if first or abs(planned - previous) >= max(2, 0.1 * previous):
            cap = f", capped at --epochs {self.config.epochs}" if self.config.epochs is not None else ""
            self.progress.note(
                f"time budget {self.config.max_minutes:g} min at {epoch_seconds:.1f} s/epoch: schedule sized to "
                f"{planned} epochs{cap} (was {previous}); the learning rate decays to its minimum at the end"
            )

    def _stop_reason(self, epoch: int, over_budget: bool) -> str | None:
        if epoch >= self.planned_epochs:
            return COMPLETED
        patience = self.config.early_stopping_patience
        if patience is not None and self.val_loader is not None and self.tracker.stale_for(epoch) >= patience:
            return EARLY_STOPPING
        return TIME_BUDGET if over_budget else None

    # -- checkpoints ---------------------------------------------------------------------------
    def _prepare(self, resume: bool | str | Path) -> None:
        recover_checkpoint(self.run.last_checkpoint)  # a swap cut short between its renames: the previous one
        recover_checkpoint(self.run.best_checkpoint)
        if not resume:
            if self.run.last_checkpoint.exists():  # config.yaml alone is fine: RunDir.create wrote it
                raise MedlearnError(
                    "a run already exists here (checkpoints/last exists); use --resume or another --out",
                    self.run.path,
                )
            self.run.path.mkdir(parents=True, exist_ok=True)
            return
        source = self.run.last_checkpoint if resume is True else Path(resume)
        if not source.is_dir():
            raise MedlearnError("nothing to resume: no checkpoint here", source)
        self._restore(source)

    def _save(self, row: Mapping[str, Any], improved: bool) -> None:
        common = {
            "epoch": self.epoch,
            "history": self.history,
            "best_metric": self.tracker.best,
            "best_epoch": self.tracker.best_epoch,
            "monitor": self.task.monitor,
            "train_config": self.config.to_dict(),
        }
        metadata = {"monitor": self.task.monitor}
        last = {
            **common,
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "schedulers": {name: scheduler.state_dict() for name, scheduler in self.schedulers.items()},
            "rng": rng_state(),
            "steps_per_epoch": self.steps_per_epoch,
            "planned_epochs": self.planned_epochs,
        }
        task_state = getattr(self.task, "state_dict", None)
        if callable(task_state):
            last["task"] = task_state()
        save_checkpoint(self.run.last_checkpoint, self.model, last, metadata)
        if self.budget_schedule is not None:
            self.run.record_schedule(self.budget_schedule)
        if improved:
            save_checkpoint(self.run.best_checkpoint, self.model, {**common, "metrics": dict(row)}, metadata)
        self.run.write_metrics(self.history)

    def _restore(self, source: Path) -> None:
        state = load_checkpoint(source, self.model)
        # runs saved before staged tasks existed hold one "optimizer"/"scheduler" state
        optimizers = state.get("optimizers") or {SINGLE_STAGE: state.get("optimizer")}
        schedulers = state.get("schedulers") or {SINGLE_STAGE: state.get("scheduler")}
        try:
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(optimizers[name])
                self.schedulers[name].load_state_dict(schedulers[name])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise MedlearnError(
                f"checkpoint optimizer state does not fit this model/optimizer ({error})", source
            ) from None
        set_rng_state(state["rng"])
        load_task_state = getattr(self.task, "load_state_dict", None)
        if "task" in state and callable(load_task_state):
            load_task_state(state["task"])
        if self.config.sized_by_budget:  # the length the budget planned, not the configured one
            # (checkpoints written before "planned_epochs" existed kept the fitted length in train_config)
            recorded = state["train_config"].get("epochs") or self.config.initial_epochs
            self.planned_epochs = int(state.get("planned_epochs", recorded))
        self.history = [dict(row) for row in state["history"]]
        self.epoch = int(state["epoch"])
        self.tracker.best, self.tracker.best_epoch = state["best_metric"], state["best_epoch"]

    # -- messages ------------------------------------------------------------------------------
    def _setup_line(self, resume: bool | str | Path) -> str:
        start = f"resuming after epoch {self.epoch}" if resume else "training"
        config = self.config
        return (
            f"{start} on {self.device}: precision {self.precision}, channels_last {config.channels_last}, "
            f"compile {config.compile}, threads {torch.get_num_threads()}, {self.steps_per_epoch} steps/epoch"
        )

    def _ending_line(self, reason: str) -> str:
        monitor = f"val_{self.task.monitor}"
        best = (
            f"; best {monitor} {self.tracker.best:.4f} at epoch {self.tracker.best_epoch}"
            if self.tracker.best is not None
            else ""
        )
        detail = {
            EARLY_STOPPING: f" (no better {monitor} for {self.config.early_stopping_patience} epochs)",
            TIME_BUDGET: f" ({self.config.max_minutes:g} min)" if self.config.max_minutes else "",
            COMPLETED: " (schedule sized to the time budget)" if self.config.sized_by_budget else "",
        }.get(reason, "")
        return f"stopped after epoch {self.epoch}: {reason}{detail}{best}"


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors (also in tuples, lists, dicts, namedtuples) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(value, device) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device) for value in batch)
    return batch


def to_cpu_float(outputs: Any) -> Any:
    """Validation outputs detached on the CPU, bf16/fp16 tensors upcast, so metric code sees float32."""
    if isinstance(outputs, torch.Tensor):
        outputs = outputs.detach().cpu()
        return outputs.float() if outputs.dtype in (torch.bfloat16, torch.float16) else outputs
    if isinstance(outputs, Mapping):
        return {key: to_cpu_float(value) for key, value in outputs.items()}
    if isinstance(outputs, tuple) and hasattr(outputs, "_fields"):
        return type(outputs)(*(to_cpu_float(value) for value in outputs))
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(to_cpu_float(value) for value in outputs)
    return outputs


def _batches_per_epoch(loader: Any) -> int:
    try:
        count = len(loader)
    except TypeError:
        raise TypeError("the training loader must have a length (a map-style dataset)") from None
    if count == 0:
        raise MedlearnError("the training data loader has no batches (too few samples for the batch size?)")
    return count


def _as_list(generator: torch.Generator | Sequence[torch.Generator] | None) -> list[torch.Generator]:
    if generator is None:
        return []
    return [generator] if isinstance(generator, torch.Generator) else list(generator)


def _distinct(generators: list[torch.Generator]) -> list[torch.Generator]:
    unique: list[torch.Generator] = []
    for generator in generators:
        if all(generator is not seen for seen in unique):
            unique.append(generator)
    return unique


def _budget_text(budget: TimeBudget) -> str | None:
    """``budget 3.2/10 min`` for the progress line (None without a budget)."""
    if budget.minutes is None:
        return None
    return f"budget {budget.spent() / 60:.1f}/{budget.minutes:g} min"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
