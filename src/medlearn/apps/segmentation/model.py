"""A trained segmentation model rebuilt from its run directory, predicting masks in the input's geometry.

Prediction repeats the training preprocessing (plan spacing, plan normalisation), segments by
sliding window, then resamples the class *probabilities* (linear) back onto the input's own grid and
takes the argmax there, as nnU-Net does: resampling a label map instead would make boundaries blocky
on thick slices. The returned mask has exactly the input's shape and affine, holding the original
label values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medlearn.apps.segmentation.cropping import RegionCropper
from medlearn.apps.segmentation.settings import SegmenterSettings, build_segmentation_model, read_segmentation_run
from medlearn.engine.checkpoint import checkpoint_weights_file, load_weights
from medlearn.engine.performance import autocast_context, resolve_precision
from medlearn.engine.rundir import RunDir
from medlearn.errors import MedlearnError
from medlearn.inference.export import OnnxModule, OnnxRunner
from medlearn.inference.sliding_window import dense_probabilities
from medlearn.io.image import MedicalImage
from medlearn.io.orientation import to_canonical
from medlearn.io.resample import resample_array
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import prepare_image, resampling_ratio


@dataclass
class SegmentationPrediction:
    """The label mask (input geometry, original label values) and the foreground probability maps."""

    mask: MedicalImage
    probabilities: np.ndarray  # (K, *spatial) on the input's grid, float32


@dataclass
class TrainedSegmenter:
    model: nn.Module
    plan: SegmentationPlan
    settings: SegmenterSettings
    precision: str = "auto"
    config: dict | None = None
    #: Localise, then segment: cuts each image to the localised region (settings ``crop_run``).
    cropper: RegionCropper | None = None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, checkpoint: str = "best") -> TrainedSegmenter:
        """Rebuild the model from ``config.yaml`` (plan included) and load its safetensors weights."""

        run = RunDir.open(run_dir)
        config, plan, settings = read_segmentation_run(run)
        model = build_segmentation_model(settings.model, plan, settings.model_kwargs)
        load_weights(model, checkpoint_weights_file(run.path, checkpoint))
        model.eval()
        precision = config.get("training", {}).get("precision", "auto")
        cropper = None
        if settings.crop_run is not None:
            cropper = RegionCropper.from_run(settings.crop_run, settings.crop_structure, settings.crop_margin_mm)
        return cls(model, plan, settings, precision, config, cropper)

    @classmethod
    def from_onnx(cls, path: str | Path) -> TrainedSegmenter:
        """A segmentation network exported by ``medlearn export``, run by ONNX Runtime (float32)."""
        runner = OnnxRunner.for_task(path, "segmentation")
        plan = SegmentationPlan(**runner.metadata_json("plan"))
        settings = SegmenterSettings.from_dict(runner.metadata_json("segmentation"))
        return cls(OnnxModule(runner), plan, settings, "fp32", {"plan": runner.metadata_json("plan")})

    @torch.inference_mode()
    def predict(
        self, image: MedicalImage, *, tta: bool | None = None, overlap: float | None = None
    ) -> SegmentationPrediction:
        """Segment one image; ``tta``/``overlap`` default to the run's settings."""

        if image.spatial_ndim != len(self.plan.target_spacing):
            raise MedlearnError(
                f"the model segments {len(self.plan.target_spacing)}D images, this one is {image.spatial_ndim}D",
                image.source,
            )
        crop = self.cropper.region(image) if self.cropper is not None else None
        probabilities = self._probabilities(crop.apply(image) if crop is not None else image, tta, overlap)
        if crop is not None:  # outside the region: background, certainly
            probabilities = crop.paste(probabilities, fill=[1.0] + [0.0] * (self.plan.num_classes - 1))
        values = np.asarray(self.plan.labels, dtype=np.uint16 if max(self.plan.labels) > 255 else np.uint8)
        labels = values[probabilities.argmax(0)][None]
        mask = dataclasses.replace(
            image,
            array=labels,
            modality="SEG",
            photometric="MONOCHROME2",
            rescale=None,
            tags={"segmentation_of": image.source, "labels": list(self.plan.labels)},
        )
        return SegmentationPrediction(mask=mask, probabilities=probabilities)

    def _probabilities(self, image: MedicalImage, tta: bool | None, overlap: float | None) -> np.ndarray:
        """Class probabilities ``(K, *spatial)`` on ``image``'s own grid."""
        oriented, reorientation = to_canonical(image) if self.plan.canonical else (image, None)
        array = torch.from_numpy(prepare_image(oriented, self.plan))
        device = torch.device("cpu")
        precision = resolve_precision(self.precision, device)
        with autocast_context(precision, device):
            probabilities = dense_probabilities(
                self.model,
                array,
                self.plan.window(self.settings.overlap if overlap is None else overlap),
                tta=self.settings.tta if tta is None else tta,
            ).numpy()
        back = 1.0 / resampling_ratio(oriented.spacing, self.plan)
        probabilities = resample_array(probabilities, back, oriented.spatial_shape, order=1)
        if reorientation is not None:
            probabilities = np.ascontiguousarray(reorientation.undo(probabilities))  # the input's own array order
        return probabilities


def load_segmenter(path: str | Path) -> TrainedSegmenter:
    """A run folder's best model, or an exported ``.onnx`` segmentation network."""
    path = Path(path)
    return TrainedSegmenter.from_onnx(path) if path.suffix.lower() == ".onnx" else TrainedSegmenter.from_run_dir(path)
