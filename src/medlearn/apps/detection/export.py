"""``medlearn export`` of a detection run: the heat-map network the sliding window runs (one window of the plan's
patch size, any batch), with the plan, settings, decoding head and validation operating threshold written into the
file, so ``detect predict model.onnx`` finds candidates exactly as from the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import medlearn
from medlearn.apps.detection.model import TrainedDetector
from medlearn.apps.detection.predict import operating_threshold
from medlearn.engine.checkpoint import checkpoint_weights_file
from medlearn.inference.export import ExportSpec
from medlearn.utils.hashing import file_sha256


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    detector = TrainedDetector.from_run_dir(run_dir)
    plan, config = detector.plan, detector.config or {}
    model = detector.model.float().eval().to(memory_format=torch.contiguous_format)
    metadata = {
        "medlearn_version": medlearn.__version__,
        "task": "detection",
        "model": detector.settings.model,
        "weights_sha256": file_sha256(checkpoint_weights_file(Path(run_dir), "best")),
        "plan": json.dumps(config["plan"]),
        "detection": json.dumps(config["detection"]),
        "head": json.dumps(model.head),
        "operating_threshold": json.dumps(operating_threshold(Path(run_dir))),
        "output": f"the {model.head} head's maps per voxel of one window",
    }
    shape = (2, plan.channels, *plan.patch_size)
    example = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    return ExportSpec(model, example, "maps", metadata)
