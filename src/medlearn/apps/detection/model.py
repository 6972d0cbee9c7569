"""A trained detector rebuilt from its run directory, applied to any image: candidates in the image's own
voxels and in world millimetres, with scores and radii."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medlearn.apps.detection.cases import voxel_size_mm
from medlearn.apps.detection.heads import HEADS, DetectionHead, head_for
from medlearn.apps.detection.settings import DetectorSettings, build_detection_model, read_detection_run
from medlearn.apps.detection.task import detect_on_grid
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
class Detections:
    """Candidates of one image, best first."""

    points: np.ndarray  # (N, d) voxel coordinates on the image's own grid (array order as loaded)
    world: np.ndarray  # (N, 3) RAS millimetres
    scores: np.ndarray  # (N,)
    radius_mm: np.ndarray  # (N,)

    def __len__(self) -> int:
        return len(self.scores)

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.points[keep], self.world[keep], self.scores[keep], self.radius_mm[keep])


def detections_on_image(
    image: MedicalImage, plan: SegmentationPlan, points: np.ndarray, scores: np.ndarray, radii_voxels: np.ndarray
) -> Detections:
    """Candidates found on the plan's grid of ``image`` (voxels of that grid) mapped to the image's own grid."""
    on_image = map_voxels(points, planned_affine(image, plan), image.affine)
    on_image = np.clip(on_image, 0, np.asarray(image.spatial_shape) - 1) if len(on_image) else on_image
    return Detections(
        points=on_image,
        world=voxel_to_world(image.affine, on_image),
        scores=np.asarray(scores, dtype=np.float64),
        radius_mm=np.asarray(radii_voxels, dtype=np.float64) * voxel_size_mm(plan),
    )


@dataclass
class TrainedDetector:
    model: nn.Module
    head: DetectionHead
    plan: SegmentationPlan
    settings: DetectorSettings
    precision: str = "auto"
    config: dict | None = None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, checkpoint: str = "best") -> TrainedDetector:
        """Rebuild the model from ``config.yaml`` (plan included) and load its safetensors weights."""
        run = RunDir.open(run_dir)
        config, plan, settings = read_detection_run(run)
        model = build_detection_model(settings.model, plan, settings.model_kwargs)
        load_weights(model, checkpoint_weights_file(run.path, checkpoint))
        model.eval()
        precision = config.get("training", {}).get("precision", "auto")
        return cls(model, head_for(model), plan, settings, precision, config)

    @classmethod
    def from_onnx(cls, path: str | Path) -> TrainedDetector:
        """A detection network exported by ``medlearn export``, run by ONNX Runtime (float32)."""
        runner = OnnxRunner.for_task(path, "detection")
        plan = SegmentationPlan(**runner.metadata_json("plan"))
        settings = DetectorSettings.from_dict(runner.metadata_json("detection"))
        head = HEADS[runner.metadata_json("head")]()
        config = {
            "plan": runner.metadata_json("plan"),
            "operating_threshold": runner.metadata_json("operating_threshold"),
        }  # noqa: E501
        return cls(OnnxModule(runner), head, plan, settings, "fp32", config)

    @torch.inference_mode()
    def predict(self, image: MedicalImage, *, tta: bool | None = None) -> Detections:
        """Candidates of one image (every local finding up to ``max_candidates``, scored 0-1)."""
        if image.spatial_ndim != len(self.plan.target_spacing):
            raise MedlearnError(
                f"the model detects in {len(self.plan.target_spacing)}D images, this one is {image.spatial_ndim}D",
                image.source,
            )
        array = torch.from_numpy(prepare_image(image, self.plan))
        device = torch.device("cpu")
        with autocast_context(resolve_precision(self.precision, device), device):
            points, scores, radii = detect_on_grid(
                self.model,
                self.head,
                array,
                self.plan.window(self.settings.overlap),
                max_candidates=self.settings.max_candidates,
                tta=self.settings.tta if tta is None else tta,
            )
        return detections_on_image(image, self.plan, points, scores, radii)


def load_detector(path: str | Path) -> TrainedDetector:
    """A run folder's best model, or an exported ``.onnx`` detection network."""
    path = Path(path)
    return TrainedDetector.from_onnx(path) if path.suffix.lower() == ".onnx" else TrainedDetector.from_run_dir(path)
