"""``medlearn export`` of a segmentation run: the network that the sliding window runs (input: one window of the
plan's patch size, any batch), with the plan and settings written into the file, so ``segment predict model.onnx``
resamples, normalises, slides, flips and writes masks exactly as from the run folder."""

from __future__ import annotations

from pathlib import Path

from medlearn.apps.common.export import export_metadata, export_network, window_example
from medlearn.apps.segmentation.model import TrainedSegmenter
from medlearn.errors import MedlearnError
from medlearn.inference.export import ExportSpec


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    segmenter = TrainedSegmenter.from_run_dir(run_dir)
    if segmenter.cropper is not None:
        raise MedlearnError("a localise-then-segment run needs its localiser too: export of such runs is not supported")
    plan, config = segmenter.plan, segmenter.config or {}
    output = f"logits of {plan.num_classes} classes (labels {plan.labels}) per voxel of one window"
    metadata = export_metadata("segmentation", segmenter.settings.model, run_dir, output,
                               plan=config["plan"], segmentation=config["segmentation"])  # fmt: skip
    model = export_network(segmenter.model)
    return ExportSpec(model, window_example(plan.channels, plan.patch_size), "logits", metadata)
