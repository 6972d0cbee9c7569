"""The folder a training run writes everything into, and the rule that protects an existing one.

Layout (all files written atomically)::

    <run>/config.yaml          resolved config: task, training, data, model — enough to rebuild the run
    <run>/metrics.csv          one row per epoch (rewritten each epoch)
    <run>/metrics.json         the same rows as a JSON list
    <run>/train.log            the run's log (per-epoch lines, notes, warnings)
    <run>/checkpoints/last/    model.safetensors + state.pt of the latest epoch (for --resume)
    <run>/checkpoints/best/    the same for the best validation epoch (for predict/evaluate)
    <run>/report.html, <run>/predictions/

A fresh run never writes into a folder that already holds one: the user must say ``--resume``
or choose another ``--out``, so a typo cannot overwrite a day of training.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import io
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from medlearn.engine.checkpoint import CHECKPOINTS_DIR, checkpoint_dir
from medlearn.errors import MedlearnError
from medlearn.utils.atomic import write_text_atomic

CONFIG_FILE = "config.yaml"
LOGGER_NAME = "medlearn"


class RunDir:
    """Paths and atomic writers of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path) -> RunDir:
        """A folder for a fresh run; refuses one that already holds a run (config or checkpoint)."""
        run = cls(path)
        existing = run.existing_run_marker()
        if existing is not None:
            raise MedlearnError(
                f"a run already exists here ({existing.relative_to(run.path)} exists); use --resume or another --out",
                run.path,
            )
        if run.path.exists() and not run.path.is_dir():
            raise MedlearnError("exists and is not a folder; choose another --out", run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run (to resume or evaluate); it must have a ``config.yaml``."""
        run = cls(path)
        if not run.config_path.is_file():
            raise MedlearnError(f"not a medlearn run directory (no {CONFIG_FILE})", run.path)
        return run

    def existing_run_marker(self) -> Path | None:
        """The file that shows a run already lives here (config or last checkpoint, also one whose swap was cut
        short), if any."""
        for marker in (self.config_path, self.last_checkpoint, self.last_checkpoint.with_name(".last.previous")):
            if marker.exists():
                return marker
        return None

    # -- paths ---------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def metrics_json(self) -> Path:
        return self.path / "metrics.json"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def last_checkpoint(self) -> Path:
        return checkpoint_dir(self.path, "last")

    @property
    def best_checkpoint(self) -> Path:
        return checkpoint_dir(self.path, "best")

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    @property
    def predictions_dir(self) -> Path:
        return self.path / "predictions"

    # -- writers -------------------------------------------------------------------------------
    def write_config(self, config: Mapping[str, Any]) -> Path:
        """Write the resolved config (paths, tuples, dataclasses and enums become plain YAML)."""
        text = yaml.safe_dump(_plain(config), sort_keys=False, allow_unicode=True)
        return write_text_atomic(self.config_path, text)

    def read_config(self) -> dict[str, Any]:
        try:
            values = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MedlearnError(f"not a medlearn run directory (no {CONFIG_FILE})", self.path) from None
        except yaml.YAMLError as error:
            raise MedlearnError(f"not valid YAML ({error})", self.config_path) from None
        if not isinstance(values, dict):
            raise MedlearnError("expected a mapping at the top of the config", self.config_path)
        return values

    def record_schedule(self, schedule: Mapping[str, Any]) -> None:
        """Put how the time budget sized the schedule under ``schedule`` in ``config.yaml`` (if the run has one),
        so the config says how long the run actually planned to train."""
        if not self.config_path.is_file():
            return
        config = self.read_config()
        if config.get("schedule") != dict(schedule):
            self.write_config({**config, "schedule": dict(schedule)})

    def write_json(self, name: str, value: Any) -> Path:
        """Write ``value`` as ``<run>/<name>`` (strict JSON: NaN/inf become null)."""
        return write_text_atomic(self.path / name, json.dumps(_plain(value), indent=2) + "\n")

    def write_metrics(self, history: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite ``metrics.csv`` and ``metrics.json`` from the whole history (one row per epoch)."""
        columns: list[str] = []
        for row in history:
            columns.extend(key for key in row if key not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        write_text_atomic(self.metrics_csv, buffer.getvalue())
        self.write_json(self.metrics_json.name, list(history))

    @contextlib.contextmanager
    def log_to_file(self) -> Iterator[logging.Handler]:
        """Send the ``medlearn`` loggers (INFO and above) to ``train.log`` while the block runs."""
        self.path.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        logger = logging.getLogger(LOGGER_NAME)
        previous_level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous_level)
            handler.close()


def _plain(value: Any) -> Any:
    """YAML/JSON-safe copy: Paths -> str, tuples -> lists, dataclasses -> dicts, non-finite floats -> None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if callable(getattr(value, "tolist", None)):  # numpy / torch scalars and arrays
        return _plain(value.tolist())
    return value
