"""A trained classifier rebuilt from its run directory, and fast batched inference with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from medlearn.apps.classification.settings import ClassifierSettings
from medlearn.data.preprocess import ClassificationPreprocessing
from medlearn.engine.checkpoint import checkpoint_weights_file, load_weights
from medlearn.engine.performance import autocast_context
from medlearn.errors import MedlearnError
from medlearn.inference.export import OnnxRunner
from medlearn.models import create_model


@dataclass
class TrainedClassifier:
    """Model + the preprocessing, class names and calibration it was trained with."""

    model: nn.Module
    classes: list[str]
    preprocessing: ClassificationPreprocessing
    temperature: float = 1.0
    precision: str = "auto"
    config: dict | None = None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, checkpoint: str = "best") -> TrainedClassifier:
        """Rebuild the model from ``config.yaml`` and load its weights (safetensors, never pickle)."""

        run_dir = Path(run_dir)
        config_path = run_dir / "config.yaml"
        if not config_path.is_file():
            raise MedlearnError("not a medlearn run directory (no config.yaml)", run_dir)
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
            settings = ClassifierSettings.from_dict(config["classification"])
            classes = list(config["classes"])
        except (yaml.YAMLError, KeyError, TypeError) as error:
            raise MedlearnError(f"config.yaml is not a classification run config ({error})", config_path) from error
        model = create_model(
            settings.model, in_channels=settings.channels, num_classes=len(classes), **settings.model_kwargs
        )
        load_weights(model, weights_path(run_dir, checkpoint))
        model.eval()
        calibration = run_dir / "calibration.yaml"
        temperature = 1.0
        if calibration.is_file():
            try:
                temperature = float(yaml.safe_load(calibration.read_text(encoding="utf-8"))["temperature"])
            except (yaml.YAMLError, KeyError, TypeError, ValueError) as error:
                raise MedlearnError(f"not a calibration file ({error})", calibration) from None
        precision = config.get("training", {}).get("precision", "auto")
        return cls(model, classes, settings.preprocessing, temperature, precision, config)

    @torch.inference_mode()
    def logits(self, arrays: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Raw (uncalibrated) logits of ``(N, C, H, W)`` preprocessed arrays, batched, bf16 where it helps."""

        self.model.eval()
        self.model = self.model.to(memory_format=torch.channels_last)
        chunks = []
        for start in range(0, len(arrays), batch_size):
            batch = torch.from_numpy(np.asarray(arrays[start : start + batch_size], dtype=np.float32))
            batch = batch.contiguous(memory_format=torch.channels_last)
            with autocast_context(self.precision):
                chunks.append(self.model(batch).float())
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, len(self.classes)), np.float32)

    def probabilities(self, arrays: np.ndarray, *, calibrated: bool = True) -> np.ndarray:
        return softmax(self.logits(arrays), self.temperature if calibrated else 1.0)


@dataclass
class ExportedClassifier:
    """A classifier exported to ONNX by ``medlearn export``, run by ONNX Runtime: the same ``classes``,
    ``preprocessing``, ``logits`` and ``probabilities`` as a :class:`TrainedClassifier`, from the file alone."""

    runner: OnnxRunner
    classes: list[str]
    preprocessing: ClassificationPreprocessing
    temperature: float = 1.0

    @classmethod
    def from_file(cls, path: str | Path) -> ExportedClassifier:
        runner = OnnxRunner.for_task(path, "classification")
        settings = ClassifierSettings.from_dict(runner.metadata_json("classification"))
        return cls(runner, list(runner.metadata_json("classes")), settings.preprocessing,
                   float(runner.metadata_json("temperature")))  # fmt: skip

    def logits(self, arrays: np.ndarray, batch_size: int = 256) -> np.ndarray:
        chunks = [self.runner.run(arrays[start : start + batch_size]) for start in range(0, len(arrays), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes)), np.float32)

    def probabilities(self, arrays: np.ndarray, *, calibrated: bool = True) -> np.ndarray:
        return softmax(self.logits(arrays), self.temperature if calibrated else 1.0)


def load_classifier(path: str | Path) -> TrainedClassifier | ExportedClassifier:
    """A run folder's best model, or an exported ``.onnx`` classifier."""
    path = Path(path)
    return (
        ExportedClassifier.from_file(path) if path.suffix.lower() == ".onnx" else TrainedClassifier.from_run_dir(path)
    )


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities of ``logits`` divided by ``temperature`` (1: uncalibrated)."""
    return torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32) / temperature), dim=1).numpy()


def weights_path(run_dir: Path, checkpoint: str = "best") -> Path:
    """Where the engine keeps a checkpoint's model weights inside a run directory."""

    return checkpoint_weights_file(Path(run_dir), checkpoint)


def positive_index(classes: Sequence[str], positive: str | None) -> int:
    """Index of the positive class: ``positive`` if named, else the second label in sorted order."""
    if positive is None:
        return 1 if len(classes) > 1 else 0
    if positive not in classes:
        raise MedlearnError(f"--positive {positive!r} is not one of the classes {list(classes)}")
    return list(classes).index(positive)
