"""The training engine shared by every medlearn task: config, loop, checkpoints, run folder, speed knobs."""

from medlearn.engine.checkpoint import (
    checkpoint_weights_file,
    load_checkpoint,
    load_training_state,
    load_weights,
    save_checkpoint,
)
from medlearn.engine.config import TrainConfig
from medlearn.engine.performance import (
    autocast_context,
    bf16_supported,
    maybe_compile,
    set_threads,
    to_channels_last,
)
from medlearn.engine.progress import TrainingProgress
from medlearn.engine.reproducibility import epoch_seed, make_loader_generator, seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.task import StepResult, Task, model_objective
from medlearn.engine.trainer import FitResult, Trainer

__all__ = [
    "FitResult",
    "RunDir",
    "StepResult",
    "Task",
    "TrainConfig",
    "Trainer",
    "TrainingProgress",
    "autocast_context",
    "bf16_supported",
    "checkpoint_weights_file",
    "epoch_seed",
    "load_checkpoint",
    "load_training_state",
    "load_weights",
    "make_loader_generator",
    "maybe_compile",
    "model_objective",
    "save_checkpoint",
    "seed_everything",
    "set_threads",
    "to_channels_last",
]
