"""The training loop on a toy task: learning, stopping rules, exact resume, bf16, progress output."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medlearn.engine.checkpoint import load_training_state, read_metadata
from medlearn.engine.config import TrainConfig
from medlearn.engine.performance import bf16_supported
from medlearn.engine.progress import TIMING_FIELDS, TrainingProgress
from medlearn.engine.reproducibility import make_loader_generator
from medlearn.engine.rundir import RunDir
from medlearn.engine.task import StepResult, Task
from medlearn.engine.trainer import Trainer
from medlearn.errors import MedlearnError

STEPS_PER_EPOCH = 4  # 64 samples / batch 16


class NoisyBlobs(Dataset):
    """Class 1 images are brighter. Noise is drawn from torch's global RNG per item, like augmentation."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 2
        self.images = torch.randn(n, 1, 8, 8, generator=generator) * 0.5 + self.labels.view(-1, 1, 1, 1).float()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index] + 0.3 * torch.randn(1, 8, 8), self.labels[index]


def toy_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


class ToyTask:
    monitor = "accuracy"
    monitor_mode = "max"

    def __init__(self) -> None:
        self.seen: list[tuple[torch.dtype, bool]] = []

    def channels_last_batch(self, batch):
        images, labels = batch
        return images.contiguous(memory_format=torch.channels_last), labels

    def training_step(self, model: nn.Module, batch) -> StepResult:
        images, labels = batch
        logits = model(images)
        self.seen.append((logits.dtype, images.is_contiguous(memory_format=torch.channels_last)))
        return StepResult(F.cross_entropy(logits.float(), labels), int(labels.shape[0]))

    def validation_step(self, model: nn.Module, batch):
        images, labels = batch
        return model(images), labels

    def validation_metrics(self, outputs) -> dict[str, float]:
        logits = torch.cat([o[0] for o in outputs])
        labels = torch.cat([o[1] for o in outputs])
        return {
            "accuracy": float((logits.argmax(1) == labels).float().mean()),
            "loss": float(F.cross_entropy(logits, labels)),
        }


class ScriptedTask(ToyTask):
    """Validation reports a fixed sequence of monitor values."""

    def __init__(self, scores: list[float], mode: str = "max") -> None:
        super().__init__()
        self.scores = list(scores)
        self.monitor_mode = mode

    def validation_metrics(self, outputs) -> dict[str, float]:
        return {"accuracy": self.scores.pop(0)}


class CrashingTask(ToyTask):
    """Raises on training step ``crash_at`` (1-based), like a process killed mid-epoch."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.steps = 0

    def training_step(self, model, batch):
        self.steps += 1
        if self.steps == self.crash_at:
            raise KeyboardInterrupt
        return super().training_step(model, batch)


def make_trainer(run_dir, task: Task, config: TrainConfig, *, model_seed: int = 0, **kwargs) -> Trainer:
    train = DataLoader(
        NoisyBlobs(64, seed=1),
        batch_size=16,
        shuffle=True,
        num_workers=0,
        generator=make_loader_generator(config.seed),
    )
    val = DataLoader(NoisyBlobs(32, seed=2), batch_size=32)
    progress = kwargs.pop("log", None) or TrainingProgress(quiet=True)
    return Trainer(task, toy_net(model_seed), train, val, config, run_dir, log=progress, **kwargs)


def fp32(**overrides) -> TrainConfig:
    values = {"epochs": 4, "batch_size": 16, "lr": 0.02, "warmup_epochs": 0.5, "precision": "fp32", "seed": 3}
    return TrainConfig(**{**values, **overrides})


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in history]


def test_training_reduces_loss_and_writes_run_files(tmp_path):
    result = make_trainer(tmp_path, ToyTask(), fp32(epochs=6)).fit()
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert result.best_metric >= 0.9
    assert result.stopped_reason == "completed" and result.epochs_run == 6
    with (tmp_path / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[-1]["val_accuracy"]) == result.history[-1]["val_accuracy"]
    assert len(json.loads((tmp_path / "metrics.json").read_text())) == 6
    assert "epoch 6/6" in (tmp_path / "train.log").read_text()
    assert load_training_state(tmp_path / "checkpoints" / "last")["epoch"] == 6
    assert load_training_state(tmp_path / "checkpoints" / "best")["epoch"] == result.best_epoch


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    task = ScriptedTask([0.5, 0.7, 0.6, 0.65, 0.7, 0.9, 0.95])
    result = make_trainer(tmp_path, task, fp32(epochs=7, early_stopping_patience=3)).fit()
    assert result.stopped_reason == "early stopping"
    assert result.epochs_run == 5 and result.best_epoch == 2 and result.best_metric == 0.7
    assert read_metadata(tmp_path / "checkpoints" / "best" / "model.safetensors")["epoch"] == "2"
    assert load_training_state(tmp_path / "checkpoints" / "last")["epoch"] == 5


def test_min_mode_and_eval_every(tmp_path):
    task = ScriptedTask([0.9, 0.4, 0.5], mode="min")
    result = make_trainer(tmp_path, task, fp32(epochs=5, eval_every=2)).fit()
    validated = [row["epoch"] for row in result.history if "val_accuracy" in row]
    assert validated == [2, 4, 5]  # every 2nd epoch and always the last
    assert result.best_epoch == 4 and result.best_metric == 0.4


def test_a_budget_that_only_interrupts_stops_cleanly_after_the_first_epoch(tmp_path):
    config = fp32(epochs=5, max_minutes=0.0001, fit_schedule_to_budget=False)
    result = make_trainer(tmp_path, ToyTask(), config).fit()
    assert result.stopped_reason == "time budget"
    assert result.epochs_run == 1
    assert "val_accuracy" in result.history[0]
    assert load_training_state(tmp_path / "checkpoints" / "last")["epoch"] == 1


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    config = fp32(epochs=4)
    straight = make_trainer(tmp_path / "a", ToyTask(), config)
    full = straight.fit()

    crashed = make_trainer(tmp_path / "b", CrashingTask(crash_at=2 * STEPS_PER_EPOCH + 2), config)
    with pytest.raises(KeyboardInterrupt):
        crashed.fit()
    assert load_training_state(tmp_path / "b" / "checkpoints" / "last")["epoch"] == 2

    # a new process: different initial weights, fresh loaders and generators
    resumed_trainer = make_trainer(tmp_path / "b", ToyTask(), config, model_seed=99)
    resumed = resumed_trainer.fit(resume=True)

    assert resumed.epochs_run == 4
    assert without_timing(resumed.history) == without_timing(full.history)
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed_trainer.model.state_dict()[name]), name
    assert (resumed.best_epoch, resumed.best_metric) == (full.best_epoch, full.best_metric)
    with (tmp_path / "b" / "metrics.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_resuming_a_finished_run_trains_nothing(tmp_path):
    make_trainer(tmp_path, ToyTask(), fp32(epochs=2)).fit()
    task = ToyTask()
    result = make_trainer(tmp_path, task, fp32(epochs=2)).fit(resume=True)
    assert result.epochs_run == 2 and result.stopped_reason == "completed" and task.seen == []


def test_fresh_fit_refuses_to_overwrite_checkpoints_and_resume_needs_one(tmp_path):
    make_trainer(tmp_path / "r", ToyTask(), fp32(epochs=1)).fit()
    with pytest.raises(MedlearnError, match="--resume"):
        make_trainer(tmp_path / "r", ToyTask(), fp32(epochs=1)).fit()
    with pytest.raises(MedlearnError, match="nothing to resume"):
        make_trainer(tmp_path / "empty", ToyTask(), fp32(epochs=1)).fit(resume=True)


def test_resume_into_another_architecture_is_a_clear_error(tmp_path):
    make_trainer(tmp_path, ToyTask(), fp32(epochs=1)).fit()
    trainer = make_trainer(tmp_path, ToyTask(), fp32(epochs=2))
    trainer.model = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(MedlearnError, match="does not match the model architecture"):
        trainer.fit(resume=True)


def test_non_finite_loss_is_reported(tmp_path):
    class NaNTask(ToyTask):
        def training_step(self, model, batch):
            result = super().training_step(model, batch)
            return StepResult(result.loss * float("nan"), result.batch_size)

    with pytest.raises(MedlearnError, match="training loss became nan at epoch 1, batch 1"):
        make_trainer(tmp_path, NaNTask(), fp32(epochs=1)).fit()


def test_bf16_autocast_and_channels_last_reach_the_task(tmp_path):
    task = ToyTask()
    trainer = make_trainer(tmp_path, task, fp32(epochs=2, precision="bf16", channels_last=True))
    result = trainer.fit()
    assert all(dtype == torch.bfloat16 for dtype, _ in task.seen)
    assert all(is_channels_last for _, is_channels_last in task.seen)
    assert trainer.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] * 1.5


def test_channels_last_reaches_only_the_tensors_a_task_marks(tmp_path):
    """The images a task marks become channels-last; a task without ``channels_last_batch`` (dense targets,
    displacement fields) keeps its batch as it is."""
    images, field = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)

    class Unmarked(ToyTask):
        channels_last_batch = None

    marked = make_trainer(tmp_path / "a", ToyTask(), fp32(epochs=1, channels_last=True))._to_device((images, field))
    assert marked[0].is_contiguous(memory_format=torch.channels_last) and marked[1].is_contiguous()
    plain = make_trainer(tmp_path / "b", Unmarked(), fp32(epochs=1, channels_last=True))._to_device((images, field))
    assert plain[0].is_contiguous() and not plain[0].is_contiguous(memory_format=torch.channels_last)


def test_the_device_is_a_parameter(tmp_path):
    trainer = make_trainer(tmp_path, ToyTask(), fp32(epochs=1), device="cpu")
    assert trainer.device == torch.device("cpu") and next(trainer.model.parameters()).device.type == "cpu"


def test_auto_precision_follows_the_hardware(tmp_path):
    trainer = make_trainer(tmp_path, ToyTask(), fp32(precision="auto"))
    assert trainer.precision == ("bf16" if bf16_supported() else "fp32")


def test_plain_output_without_a_terminal(tmp_path):
    buffer = io.StringIO()
    progress = TrainingProgress(console=Console(file=buffer, force_terminal=False, width=200))
    make_trainer(tmp_path, ToyTask(), fp32(epochs=2), log=progress).fit()
    lines = [line for line in buffer.getvalue().splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("train_loss" in line and "val_accuracy" in line and "img/s" in line for line in lines)
    assert "\x1b[" not in buffer.getvalue()  # no live bar / control codes in CI logs
    assert progress.live is False


def test_run_dir_object_and_config_written_first(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.write_config({"training": fp32(epochs=1).to_dict()})
    result = make_trainer(run, ToyTask(), fp32(epochs=1)).fit()  # a config alone does not block the fit
    assert result.last_checkpoint == run.last_checkpoint and result.best_checkpoint == run.best_checkpoint


def test_resume_after_a_crash_between_the_two_renames_of_a_checkpoint_swap(tmp_path):
    """The previous checkpoint survives as .last.previous; resume must find it, not say 'nothing to resume'."""
    make_trainer(tmp_path, ToyTask(), fp32(epochs=2)).fit()
    last = tmp_path / "checkpoints" / "last"
    last.rename(last.with_name(".last.previous"))  # the process died between renaming aside and renaming in
    result = make_trainer(tmp_path, ToyTask(), fp32(epochs=3)).fit(resume=True)
    assert result.epochs_run == 3 and last.is_dir()
