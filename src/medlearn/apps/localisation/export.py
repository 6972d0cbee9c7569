"""``medlearn export`` of a landmark run: the heat-map network the sliding window runs (one window of the plan's
patch size, any batch), with the plan and settings (landmark names, heat-map width) written into the file, so
``localise predict model.onnx`` finds landmarks exactly as from the run folder. Box runs (slice classifiers) are
not exported yet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import medlearn
from medlearn.apps.localisation.kinds import is_box_run
from medlearn.apps.localisation.landmark_model import TrainedLocaliser
from medlearn.engine.checkpoint import checkpoint_weights_file
from medlearn.errors import MedlearnError
from medlearn.inference.export import ExportSpec
from medlearn.utils.hashing import file_sha256


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    if is_box_run(run_dir):
        raise MedlearnError("export of box localisation runs (slice classifiers) is not supported yet", run_dir)
    localiser = TrainedLocaliser.from_run_dir(run_dir)
    plan, config = localiser.plan, localiser.config or {}
    model = localiser.model.float().eval().to(memory_format=torch.contiguous_format)
    metadata = {
        "medlearn_version": medlearn.__version__,
        "task": "localisation",
        "model": localiser.settings.model,
        "weights_sha256": file_sha256(checkpoint_weights_file(Path(run_dir), "best")),
        "plan": json.dumps(config["plan"]),
        "localisation": json.dumps(config["localisation"]),
        "output": f"one heat map per landmark ({', '.join(localiser.settings.landmarks)}) per voxel of one window",
    }
    shape = (2, plan.channels, *plan.patch_size)
    example = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    return ExportSpec(model, example, "heatmaps", metadata)
