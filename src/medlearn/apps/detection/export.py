"""``medlearn export`` of a detection run: the heat-map network the sliding window runs (one window of the plan's
patch size, any batch), with the plan, settings, decoding head and validation operating threshold written into the
file, so ``detect predict model.onnx`` finds candidates exactly as from the run folder."""

from __future__ import annotations

from pathlib import Path

from medlearn.apps.common.export import export_metadata, export_network, window_example
from medlearn.apps.detection.model import TrainedDetector
from medlearn.apps.detection.predict import operating_threshold
from medlearn.inference.export import ExportSpec


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    detector = TrainedDetector.from_run_dir(run_dir)
    plan, config = detector.plan, detector.config or {}
    model = export_network(detector.model)
    metadata = export_metadata(
        "detection", detector.settings.model, run_dir, f"the {model.head} head's maps per voxel of one window",
        plan=config["plan"], detection=config["detection"], head=model.head,
        operating_threshold=operating_threshold(Path(run_dir)),
    )  # fmt: skip
    return ExportSpec(model, window_example(plan.channels, plan.patch_size), "maps", metadata)
