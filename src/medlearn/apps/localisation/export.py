"""``medlearn export`` of a landmark run: the heat-map network the sliding window runs (one window of the plan's
patch size, any batch), with the plan and settings (landmark names, heat-map width) written into the file, so
``localise predict model.onnx`` finds landmarks exactly as from the run folder. Box runs (slice classifiers) are
not exported yet."""

from __future__ import annotations

from pathlib import Path

from medlearn.apps.common.export import export_metadata, export_network, window_example
from medlearn.apps.localisation.kinds import is_box_run
from medlearn.apps.localisation.landmark_model import TrainedLocaliser
from medlearn.errors import MedlearnError
from medlearn.inference.export import ExportSpec


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    if is_box_run(run_dir):
        raise MedlearnError("export of box localisation runs (slice classifiers) is not supported yet", run_dir)
    localiser = TrainedLocaliser.from_run_dir(run_dir)
    plan, config = localiser.plan, localiser.config or {}
    output = f"one heat map per landmark ({', '.join(localiser.settings.landmarks)}) per voxel of one window"
    metadata = export_metadata("localisation", localiser.settings.model, run_dir, output,
                               plan=config["plan"], localisation=config["localisation"])  # fmt: skip
    return ExportSpec(export_network(localiser.model), window_example(plan.channels, plan.patch_size), "heatmaps",
                      metadata)  # fmt: skip
