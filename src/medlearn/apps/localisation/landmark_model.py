"""A trained landmark localiser rebuilt from its run directory: named landmarks of any image, in its own voxels
and in world millimetres."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medlearn.apps.localisation.landmark_cases import LandmarkHeatmaps, sigma_voxels
from medlearn.apps.localisation.landmark_task import locate_on_grid
from medlearn.apps.localisation.settings import LocaliserSettings, build_localisation_model, read_localisation_run
from medlearn.engine.checkpoint import checkpoint_weights_file, load_weights
from medlearn.engine.performance import autocast_context, resolve_precision
from medlearn.engine.rundir import RunDir
from medlearn.errors import MedlearnError
from medlearn.inference.export import OnnxModule, OnnxRunner
from medlearn.io.geometry import voxel_to_world
from medlearn.io.image import MedicalImage
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import map_voxels, planned_affine, prepare_image


@dataclass
class Landmarks:
    """Named landmarks of one image."""

    names: list[str]
    points: np.ndarray  # (K, d) voxel coordinates on the image's own grid
    world: np.ndarray  # (K, 3) RAS millimetres
    scores: np.ndarray  # (K,) peak heat (0-1) or correlation


def landmarks_on_image(
    image: MedicalImage, plan: SegmentationPlan, names: list[str], points: np.ndarray, scores: np.ndarray
) -> Landmarks:
    """Landmarks found on the plan's grid of ``image`` mapped to the image's own grid and the world."""
    on_image = map_voxels(points, planned_affine(image, plan), image.affine)
    return Landmarks(list(names), on_image, voxel_to_world(image.affine, on_image), np.asarray(scores, float))


@dataclass
class TrainedLocaliser:
    model: nn.Module
    heads: LandmarkHeatmaps
    plan: SegmentationPlan
    settings: LocaliserSettings
    precision: str = "auto"
    config: dict | None = None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, checkpoint: str = "best") -> TrainedLocaliser:
        run = RunDir.open(run_dir)
        config, plan, settings = read_localisation_run(run)
        model = build_localisation_model(settings, plan)
        load_weights(model, checkpoint_weights_file(run.path, checkpoint))
        model.eval()
        heads = LandmarkHeatmaps(len(settings.landmarks), sigma_voxels(plan, settings.sigma_mm))
        return cls(model, heads, plan, settings, config.get("training", {}).get("precision", "auto"), config)

    @classmethod
    def from_onnx(cls, path: str | Path) -> TrainedLocaliser:
        """A landmark network exported by ``medlearn export``, run by ONNX Runtime (float32)."""
        runner = OnnxRunner.for_task(path, "localisation")
        plan = SegmentationPlan(**runner.metadata_json("plan"))
        settings = LocaliserSettings.from_dict(runner.metadata_json("localisation"))
        heads = LandmarkHeatmaps(len(settings.landmarks), sigma_voxels(plan, settings.sigma_mm))
        return cls(OnnxModule(runner), heads, plan, settings, "fp32", {"plan": runner.metadata_json("plan")})

    @torch.inference_mode()
    def predict(self, image: MedicalImage) -> Landmarks:
        """The landmarks of one image. No flip test-time augmentation: a mirrored image swaps left and right."""
        if image.spatial_ndim != len(self.plan.target_spacing):
            raise MedlearnError(
                f"the model localises in {len(self.plan.target_spacing)}D images, this one is {image.spatial_ndim}D",
                image.source,
            )
        array = torch.from_numpy(prepare_image(image, self.plan))
        device = torch.device("cpu")
        with autocast_context(resolve_precision(self.precision, device), device):
            points, scores = locate_on_grid(
                self.model,
                self.heads,
                array,
                self.plan.window(self.settings.overlap),
            )
        return landmarks_on_image(image, self.plan, self.settings.landmarks, points, scores)


def load_localiser(path: str | Path) -> TrainedLocaliser:
    """A run folder's best model, or an exported ``.onnx`` landmark network."""
    path = Path(path)
    return TrainedLocaliser.from_onnx(path) if path.suffix.lower() == ".onnx" else TrainedLocaliser.from_run_dir(path)
