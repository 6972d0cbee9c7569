"""A trained enhancement model rebuilt from its run directory: restores unit-range slices, and whole
images or volumes in their own intensity units.

Intensities. The network works on unit-range slices (:func:`~medlearn.io.intensity.unit_range`).
To give back an image in the input's units, only the *change* the network made is mapped back:
``enhanced = up(original) + (restored - up(unit)) * span`` where ``span`` is the width of the CT window
or of the 0.5-99.5 percentile range, and ``up`` is the identity for denoising and cubic upsampling for
super-resolution. Pixels saturated by the unit mapping (outside the CT window, beyond the percentiles)
carry no information for the network and keep ``up(original)``. Integer images stay in their dtype
(rounded, clipped to its range); colour images become grey.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medlearn.apps.enhancement.settings import TASK, EnhancerSettings, build_enhancement_model, read_enhancement_run
from medlearn.apps.enhancement.slices import grey_array
from medlearn.engine.checkpoint import checkpoint_weights_file, load_weights
from medlearn.engine.performance import autocast_context, resolve_precision, set_threads
from medlearn.engine.rundir import RunDir
from medlearn.errors import MedlearnError
from medlearn.evaluation.classical_enhancement import bicubic
from medlearn.inference.export import OnnxModule, OnnxRunner
from medlearn.io.geometry import image_from_affine, thickest_axis
from medlearn.io.image import MedicalImage
from medlearn.io.intensity import unit_range, unit_range_bounds


@dataclass
class TrainedEnhancer:
    model: nn.Module
    settings: EnhancerSettings
    precision: str = "auto"
    config: dict | None = None
    run_dir: Path | None = None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, checkpoint: str = "best") -> TrainedEnhancer:
        """Rebuild the model from ``config.yaml`` and load its safetensors weights (architecture checked)."""

        run = RunDir.open(run_dir)
        config, settings = read_enhancement_run(run)
        model = build_enhancement_model(settings)
        load_weights(model, checkpoint_weights_file(run.path, checkpoint))
        model.eval()
        precision = config.get("training", {}).get("precision", "auto")
        return cls(model, settings, precision, config, run.path)

    @classmethod
    def from_onnx(cls, path: str | Path) -> TrainedEnhancer:
        """An enhancement network exported by ``medlearn export``, run by ONNX Runtime (float32)."""
        runner = OnnxRunner.for_task(path, TASK)
        values = runner.metadata_json(TASK)
        return cls(OnnxModule(runner), EnhancerSettings.from_dict(values), "fp32", {TASK: values}, Path(path))

    @property
    def threads(self) -> int | None:
        """The run's ``num_threads`` (None: torch's default), also used for inference."""
        value = (self.config or {}).get("training", {}).get("num_threads")
        return int(value) if value else None

    @property
    def scale(self) -> int:
        return self.settings.spec.scale

    @torch.inference_mode()
    def restore(self, degraded: np.ndarray) -> np.ndarray:
        """The network's output for one unit-range 2D slice (``scale`` times larger for SR), float32, unclipped."""

        self.model.eval()
        device = torch.device("cpu")
        x = torch.from_numpy(np.ascontiguousarray(degraded, dtype=np.float32))[None, None]
        previous = set_threads(self.threads)
        try:
            with autocast_context(resolve_precision(self.precision, device), device):
                y = self.model(x)
        finally:
            set_threads(previous)
        return y.float()[0, 0].numpy()

    def enhance(self, image: MedicalImage) -> MedicalImage:
        """Enhance a 2D image or a volume (slice by slice along its thickest axis), in its own units."""

        settings = self.settings
        modality = settings.modality or image.modality
        grey = grey_array(image)
        if grey.ndim not in (2, 3):
            raise MedlearnError(f"expected a 2D image or a 3D volume, got spatial shape {grey.shape}", image.source)
        unit = unit_range(grey, modality, window=settings.ct_window, bounds=settings.bounds)
        _, span = unit_range_bounds(grey, modality, window=settings.ct_window, bounds=settings.bounds)
        if grey.ndim == 2:
            out = self._enhance_plane(grey, unit, span)
            axes = (0, 1)
        else:
            axis = thickest_axis(image.spacing)
            planes = [
                self._enhance_plane(np.take(grey, i, axis=axis), np.take(unit, i, axis=axis), span)
                for i in range(grey.shape[axis])
            ]
            out = np.stack(planes, axis=axis)
            axes = tuple(a for a in range(3) if a != axis)
        array = _in_dtype(out, image.array.dtype)[None]
        affine = _upsampled_affine(image.affine, axes, self.scale)

        tags = {k: v for k, v in image.tags.items() if k not in ("rgb_is_grey", "normalization")}
        tags["enhanced"] = True  # the provenance mark medlearn's writers record where the format allows
        tags["enhancement"] = self.description()
        return image_from_affine(
            array,
            affine,
            modality=image.modality,
            photometric="MONOCHROME2",
            source=image.source,
            format=image.format,
            tags=tags,
        )

    def description(self) -> dict:
        """What produced an enhanced image (stored in output metadata)."""
        settings = self.settings
        return {
            "by": "medlearn enhance",
            "task": settings.task,
            "degradation": settings.degradation,
            "model": settings.model,
            "run": str(self.run_dir) if self.run_dir else None,
        }

    def _enhance_plane(self, original: np.ndarray, unit: np.ndarray, span: float) -> np.ndarray:

        restored = self.restore(unit)
        if self.scale == 1:
            up_unit, up_original = unit, original
        else:
            up_unit, up_original = bicubic(unit, restored.shape), bicubic(original, restored.shape)
        out = up_original + (restored - up_unit) * np.float32(span)
        saturated = (up_unit <= 0.0) | (up_unit >= 1.0)
        out[saturated] = up_original[saturated]
        return out.astype(np.float32)


def _in_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(array), info.min, info.max).astype(dtype)
    if dtype == np.bool_:
        return array > 0.5
    return array.astype(np.float32)


def _upsampled_affine(affine: np.ndarray, axes: tuple[int, ...], scale: int) -> np.ndarray:
    """Voxel steps of ``axes`` divided by ``scale``, origin moved so the new voxel centres tile the old extent."""
    affine = np.array(affine, dtype=np.float64)
    if scale == 1:
        return affine
    for axis in axes:
        step = affine[:3, axis].copy()
        affine[:3, 3] += (0.5 / scale - 0.5) * step
        affine[:3, axis] = step / scale
    return affine


def load_enhancer(path: str | Path) -> TrainedEnhancer:
    """A run folder's best model, or an exported ``.onnx`` enhancement network."""
    path = Path(path)
    return TrainedEnhancer.from_onnx(path) if path.suffix.lower() == ".onnx" else TrainedEnhancer.from_run_dir(path)
