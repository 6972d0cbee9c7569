"""``--max-minutes`` sizes the schedule to fill the budget, tested with a fake clock (no sleeps)."""

from __future__ import annotations

import io
import logging

import pytest
import torch
from rich.console import Console
from tests.engine.test_trainer import STEPS_PER_EPOCH, ScriptedTask, ToyTask, fp32, make_trainer, without_timing

from medlearn.engine.budget import TimeBudget, epochs_affordable
from medlearn.engine.checkpoint import load_training_state
from medlearn.engine.progress import TrainingProgress
from medlearn.engine.rundir import RunDir


class FakeClock:
    """Seconds that pass only when a training step says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ClockedTask(ToyTask):
    """Each training step takes ``seconds`` on the fake clock (the first epoch's steps ``first_epoch`` each);
    step ``crash_at`` (1-based, counted over the whole fit) raises like a killed process."""

    def __init__(self, clock: FakeClock, seconds: float = 1.0, first_epoch: float | None = None, crash_at=None):
        super().__init__()
        self.clock, self.seconds, self.first_epoch, self.crash_at = clock, seconds, first_epoch, crash_at
        self.steps = 0

    def training_step(self, model, batch):
        self.steps += 1
        if self.steps == self.crash_at:
            raise KeyboardInterrupt
        slow = self.first_epoch is not None and self.steps <= STEPS_PER_EPOCH
        self.clock.now += self.first_epoch if slow else self.seconds
        return super().training_step(model, batch)


def budgeted(tmp_path, *, task=None, clock=None, **config):
    """A trainer whose steps take 1 s (4 s per epoch) on a fake clock, with a 1-minute budget by default."""
    clock = clock or FakeClock()
    values = {"epochs": None, "default_epochs": 3, "max_minutes": 1.0, "min_lr_ratio": 0.01, **config}
    return make_trainer(tmp_path, task or ClockedTask(clock), fp32(**values), clock=clock), clock


def test_without_epochs_the_budget_extends_the_default_schedule_and_the_cosine_ends_with_it(tmp_path):
    trainer, clock = budgeted(tmp_path, default_epochs=3)
    result = trainer.fit()
    assert result.epochs_run == 15 and result.stopped_reason == "completed"  # 60 s / 4 s per epoch
    assert trainer.scheduler.lr_lambdas[0].total_steps == 15 * STEPS_PER_EPOCH
    assert result.history[-1]["lr"] == pytest.approx(0.02 * 0.01, rel=0.2)  # decayed to its minimum
    assert clock.now - 1000.0 <= 60.0


def test_without_epochs_the_budget_shortens_a_longer_default(tmp_path):
    trainer, _ = budgeted(tmp_path, default_epochs=40)
    assert trainer.fit().epochs_run == 15


@pytest.mark.parametrize(("epochs", "expected"), [(10, 10), (40, 15)])
def test_explicit_epochs_stay_a_cap(tmp_path, epochs, expected):
    trainer, _ = budgeted(tmp_path, epochs=epochs)
    result = trainer.fit()
    assert result.epochs_run == expected
    assert trainer.scheduler.lr_lambdas[0].total_steps == expected * STEPS_PER_EPOCH


def test_a_slow_first_epoch_does_not_waste_the_budget(tmp_path):
    """The first epoch costs 20 s (caches, kernels), later ones 4 s: sizing once from the first epoch would
    plan 3 epochs and leave 48 of the 60 s unused."""
    clock = FakeClock()
    trainer, _ = budgeted(tmp_path, clock=clock, task=ClockedTask(clock, first_epoch=5.0))
    result = trainer.fit()
    assert result.epochs_run == 11  # 20 s + 10 x 4 s
    assert clock.now - 1000.0 == pytest.approx(60.0)


def test_early_stopping_still_ends_a_budgeted_run_sooner(tmp_path):
    clock = FakeClock()

    class Stalling(ScriptedTask):
        def training_step(self, model, batch):
            clock.now += 1.0
            return super().training_step(model, batch)

    task = Stalling([0.5, 0.7, 0.6, 0.6, 0.6] + [0.6] * 20)
    trainer, _ = budgeted(tmp_path, clock=clock, task=task, early_stopping_patience=3)
    result = trainer.fit()
    assert result.stopped_reason == "early stopping" and result.epochs_run == 5


def test_a_budget_shorter_than_one_epoch_says_so_and_leaves_a_usable_checkpoint(tmp_path, caplog):
    trainer, _ = budgeted(tmp_path, max_minutes=0.01)  # 0.6 s against 4 s per epoch
    with caplog.at_level(logging.WARNING, logger="medlearn.train"):
        result = trainer.fit()
    assert result.epochs_run == 1 and result.best_checkpoint is not None
    assert "shorter than one epoch (4.0 s)" in caplog.text and "--max-minutes 0.4" in caplog.text
    assert load_training_state(tmp_path / "checkpoints" / "last")["epoch"] == 1


def test_the_sized_schedule_is_recorded_in_the_config_and_shown_in_the_progress_line(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.write_config({"task": "toy", "training": {"max_minutes": 1.0}})
    buffer = io.StringIO()
    progress = TrainingProgress(console=Console(file=buffer, force_terminal=False, width=300))
    clock = FakeClock()
    trainer = make_trainer(
        run, ClockedTask(clock), fp32(epochs=None, default_epochs=3, max_minutes=1.0), clock=clock, log=progress
    )
    trainer.fit()
    schedule = run.read_config()["schedule"]
    assert schedule["epochs"] == 15 and schedule["sized_by"] == "time budget" and schedule["epoch_seconds"] == 4.0
    assert run.read_config()["task"] == "toy"  # the rest of the config is kept
    lines = [line for line in buffer.getvalue().splitlines() if line.startswith("epoch ")]
    assert lines[0].startswith("epoch 1/15") and lines[-1].startswith("epoch 15/15")  # sized after epoch 1
    assert lines[-1].endswith("budget 1.0/1 min")
    assert "schedule sized to 15 epochs (was 3)" in buffer.getvalue()


def test_resume_of_a_budgeted_run_finishes_the_planned_schedule_exactly(tmp_path):
    straight, _ = budgeted(tmp_path / "straight")
    full = straight.fit()
    clock = FakeClock()
    crashed, _ = budgeted(tmp_path / "parts", clock=clock, task=ClockedTask(clock, crash_at=6 * STEPS_PER_EPOCH + 2))
    with pytest.raises(KeyboardInterrupt):
        crashed.fit()
    clock = FakeClock()
    resumed, _ = budgeted(tmp_path / "parts", clock=clock, task=ClockedTask(clock))
    result = resumed.fit(resume=True)
    assert result.epochs_run == full.epochs_run == 15
    assert without_timing(result.history) == without_timing(full.history)
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def test_epochs_affordable_uses_recent_epochs_caps_and_never_goes_back():
    assert epochs_affordable(1, [20.0], remaining=40.0, cap=None) == 3
    assert epochs_affordable(2, [20.0, 4.0], remaining=36.0, cap=None) == 11
    assert epochs_affordable(2, [20.0, 4.0], remaining=36.0, cap=5) == 5
    assert epochs_affordable(4, [4.0] * 4, remaining=-3.0, cap=None) == 4
    with pytest.raises(ValueError):
        epochs_affordable(0, [], remaining=10.0, cap=None)


def test_time_budget_counts_earlier_invocations():
    clock = FakeClock()
    budget = TimeBudget(1.0, clock, spent_before=50.0)
    clock.now += 9.0
    assert budget.remaining() == pytest.approx(1.0) and not budget.exceeded()
    clock.now += 2.0
    assert budget.exceeded()
    assert not TimeBudget(None, clock).exceeded()
