"""``medlearn export`` of a segmentation run: the network that the sliding window runs (input: one window of the
plan's patch size, any batch), with the plan and settings written into the file, so ``segment predict model.onnx``
resamples, normalises, slides, flips and writes masks exactly as from the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import medlearn
from medlearn.apps.segmentation.model import TrainedSegmenter
from medlearn.engine.checkpoint import checkpoint_weights_file
from medlearn.errors import MedlearnError
from medlearn.inference.export import ExportSpec
from medlearn.utils.hashing import file_sha256


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    segmenter = TrainedSegmenter.from_run_dir(run_dir)
    if segmenter.cropper is not None:
        raise MedlearnError("a localise-then-segment run needs its localiser too: export of such runs is not supported")
    plan = segmenter.plan
    model = segmenter.model.float().eval().to(memory_format=torch.contiguous_format)
    config = segmenter.config or {}
    metadata = {
        "medlearn_version": medlearn.__version__,
        "task": "segmentation",
        "model": segmenter.settings.model,
        "weights_sha256": file_sha256(checkpoint_weights_file(Path(run_dir), "best")),
        "plan": json.dumps(config["plan"]),
        "segmentation": json.dumps(config["segmentation"]),
        "output": f"logits of {plan.num_classes} classes (labels {plan.labels}) per voxel of one window",
    }
    shape = (2, plan.channels, *plan.patch_size)
    example = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    return ExportSpec(model, example, "logits", metadata)
