"""What a ``<task> train`` call asks for, and what it gives back: one shape for every task.

A task's request is a three-line subclass naming its config section, its settings class and its training
defaults; :meth:`TrainRequest.build` merges those defaults, an optional config file and the CLI's flags (the CLI
wins) the same way for every task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from medlearn.utils.settings import merge_layers

S = TypeVar("S")
R = TypeVar("R", bound="TrainRequest")


@dataclass
class TrainRequest(Generic[S]):
    """What the user asked for, with defaults, config file and CLI flags merged (CLI wins)."""

    data: str
    out: Path
    settings: S
    training: dict
    #: Validation data given separately (tasks that accept it); None: a held-out share of ``data``.
    val_data: str | None = None

    #: The task's section in config.yaml / a config file.
    section: ClassVar[str]
    #: The task's settings dataclass (with ``from_dict``).
    settings_type: ClassVar[Any]
    #: The task's defaults for the engine's TrainConfig.
    training_defaults: ClassVar[dict]

    @classmethod
    def build(
        cls: type[R],
        *,
        data: str,
        out: Path,
        val_data: str | None = None,
        config_file: Path | None = None,
        overrides: dict | None = None,
    ) -> R:
        merged = merge_layers({cls.section: {}, "training": cls.training_defaults}, config_file, overrides)
        settings = cls.settings_type.from_dict(merged[cls.section])
        return cls(str(data), Path(out), settings, merged["training"], val_data)


@dataclass
class TrainOutcome:
    """A finished training: its run folder, its report (if one was written) and the headline metrics."""

    run_dir: Path
    report: Path | None
    metrics: dict
