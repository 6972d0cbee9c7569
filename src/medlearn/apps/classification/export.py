"""``medlearn export`` of a classification run: the network with the class names, preprocessing and calibration
temperature written into the file, so ``classify predict model.onnx ...`` needs no run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import medlearn
from medlearn.apps.classification.model import TrainedClassifier, weights_path
from medlearn.data.preload import preload
from medlearn.data.sources import load_samples
from medlearn.inference.export import ExportSpec
from medlearn.utils.hashing import file_sha256

#: Real images the export check runs, at most.
CHECK_IMAGES = 32


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    classifier = TrainedClassifier.from_run_dir(run_dir)
    size, channels = classifier.preprocessing.image_size, classifier.preprocessing.channels
    model = classifier.model.float().eval().to(memory_format=torch.contiguous_format)
    real = None
    if check_data is not None:
        samples = load_samples(check_data, labelled=False)[:CHECK_IMAGES]
        real = preload(samples, classifier.preprocessing, show_progress=False).arrays
    config = classifier.config or {}
    metadata = {
        "medlearn_version": medlearn.__version__,
        "task": "classification",
        "model": config.get("classification", {}).get("model", type(model).__name__),
        "weights_sha256": file_sha256(weights_path(Path(run_dir))),
        "classes": json.dumps(classifier.classes),
        "classification": json.dumps(config.get("classification", {})),
        "temperature": json.dumps(classifier.temperature),
        "output": "logits (softmax after dividing by the temperature gives calibrated probabilities)",
    }
    example = torch.from_numpy(np.random.default_rng(0).standard_normal((2, channels, size, size)).astype(np.float32))
    return ExportSpec(model, example, "logits", metadata, real_inputs=real)
