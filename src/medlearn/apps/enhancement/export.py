"""``medlearn export`` of an enhancement run: the network that restores one unit-range slice (any batch, any
height and width: the networks are fully convolutional), with the settings written into the file, so ``enhance
apply model.onnx`` maps intensities, slices volumes and writes outputs exactly as from the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import medlearn
from medlearn.apps.enhancement.model import TrainedEnhancer
from medlearn.apps.enhancement.settings import TASK
from medlearn.engine.checkpoint import checkpoint_weights_file
from medlearn.inference.export import ExportSpec
from medlearn.utils.hashing import file_sha256

#: Side of the example slice (a multiple of every network's downsampling).
EXAMPLE_SIDE = 64


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    enhancer = TrainedEnhancer.from_run_dir(run_dir)
    model = enhancer.model.float().eval().to(memory_format=torch.contiguous_format)
    metadata = {
        "medlearn_version": medlearn.__version__,
        "task": TASK,
        "model": enhancer.settings.model,
        "weights_sha256": file_sha256(checkpoint_weights_file(Path(run_dir), "best")),
        TASK: json.dumps((enhancer.config or {})[TASK]),
        "output": f"the restored unit-range slice ({enhancer.scale}x the input's side)",
    }
    example = np.random.default_rng(0).random((2, 1, EXAMPLE_SIDE, EXAMPLE_SIDE)).astype(np.float32)
    return ExportSpec(
        model, torch.from_numpy(example), "restored", metadata, dynamic_axes={0: "batch", 2: "height", 3: "width"}
    )
