"""A trained box localiser rebuilt from its run directory: each structure's box on any volume's own grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medlearn.apps.localisation.box_task import slice_probabilities
from medlearn.apps.localisation.boxes import box_on_grid, boxes_from_probabilities, volume_slices
from medlearn.apps.localisation.settings import LocaliserSettings, build_localisation_model, read_localisation_run
from medlearn.engine.checkpoint import checkpoint_weights_file, load_weights
from medlearn.engine.rundir import RunDir
from medlearn.errors import MedlearnError
from medlearn.io.image import MedicalImage
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import planned_affine, prepare_image


@dataclass
class TrainedBoxLocaliser:
    model: nn.Module
    plan: SegmentationPlan
    settings: LocaliserSettings
    config: dict | None = None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, checkpoint: str = "best") -> TrainedBoxLocaliser:
        run = RunDir.open(run_dir)
        config, plan, settings = read_localisation_run(run)
        if not settings.boxes:
            raise MedlearnError("this localisation run finds landmarks, not boxes", run.path)
        model = build_localisation_model(settings, plan)
        load_weights(model, checkpoint_weights_file(run.path, checkpoint))
        model.eval()
        return cls(model, plan, settings, config)

    @torch.inference_mode()
    def predict(self, image: MedicalImage) -> dict[str, np.ndarray | None]:
        """Each structure's box (voxel-centre extents ``(low..., high...)`` on ``image``'s grid), None if not found."""
        if image.spatial_ndim != 3:
            raise MedlearnError("box localisation works on 3D volumes", image.source)
        array = prepare_image(image, self.plan)
        slices = [volume_slices(array, axis, self.settings.slice_size) for axis in range(3)]
        found = boxes_from_probabilities(slice_probabilities(self.model, slices))
        affine = planned_affine(image, self.plan)
        return {
            name: None if box is None else box_on_grid(box, affine, image.affine)
            for name, box in zip(self.settings.structures, found, strict=True)
        }
