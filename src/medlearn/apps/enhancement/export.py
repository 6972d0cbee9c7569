"""``medlearn export`` of an enhancement run: the network that restores one unit-range slice (any batch, any
height and width: the networks are fully convolutional), with the settings written into the file, so ``enhance
apply model.onnx`` maps intensities, slices volumes and writes outputs exactly as from the run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medlearn.apps.common.export import export_metadata, export_network
from medlearn.apps.enhancement.model import TrainedEnhancer
from medlearn.apps.enhancement.settings import TASK
from medlearn.inference.export import ExportSpec

#: Side of the example slice (a multiple of every network's downsampling).
EXAMPLE_SIDE = 64


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    enhancer = TrainedEnhancer.from_run_dir(run_dir)
    output = f"the restored unit-range slice ({enhancer.scale}x the input's side)"
    metadata = export_metadata(TASK, enhancer.settings.model, run_dir, output, **{TASK: (enhancer.config or {})[TASK]})
    example = np.random.default_rng(0).random((2, 1, EXAMPLE_SIDE, EXAMPLE_SIDE)).astype(np.float32)
    return ExportSpec(
        export_network(enhancer.model), torch.from_numpy(example), "restored", metadata,
        dynamic_axes={0: "batch", 2: "height", 3: "width"},
    )  # fmt: skip
