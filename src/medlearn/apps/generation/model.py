"""A trained generator rebuilt from its run directory: samples as arrays, or as files marked synthetic."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medlearn.apps.generation.settings import GeneratorSettings, build_generation_model, read_generation_run
from medlearn.engine.checkpoint import checkpoint_weights_file, load_weights
from medlearn.engine.rundir import RunDir
from medlearn.errors import MedlearnError
from medlearn.io import save
from medlearn.io.geometry import image_from_affine
from medlearn.models.gan import AdversarialNet
from medlearn.utils.atomic import atomic_path

SAMPLE_FORMATS = ("png", "nii.gz", "nii")


@dataclass
class TrainedGenerator:
    model: AdversarialNet
    settings: GeneratorSettings
    classes: list[str]
    config: dict

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, checkpoint: str = "best") -> TrainedGenerator:
        """Rebuild the GAN from ``config.yaml`` and load its safetensors weights (``best``: lowest validation
        FID, or the last epoch when the run had no validation images)."""

        run = RunDir.open(run_dir)
        config, settings = read_generation_run(run)
        classes = list(config.get("classes") or [])
        model = build_generation_model(settings, len(classes))
        load_weights(model, checkpoint_weights_file(run.path, checkpoint))
        return cls(model.eval(), settings, classes, config)

    def class_index(self, label: str | None) -> int | None:
        if label is None:
            return None
        if not self.classes:
            raise MedlearnError(f"this generator is unconditional; it cannot be asked for class {label!r}")
        if label not in self.classes:
            raise MedlearnError(f"unknown class {label!r}; this generator knows {', '.join(self.classes)}")
        return self.classes.index(label)

    def balanced_labels(self, count: int, label: str | None = None) -> np.ndarray | None:
        """Class indices for ``count`` samples: all ``label``, or the classes in turn (None if unconditional)."""
        index = self.class_index(label)
        if not self.classes:
            return None
        if index is not None:
            return np.full(count, index, dtype=np.int64)
        return np.arange(count, dtype=np.int64) % len(self.classes)

    @torch.inference_mode()
    def sample(self, count: int, labels: np.ndarray | None = None, *, seed: int = 0, batch: int = 256) -> np.ndarray:
        """``(count, C, S, S)`` float32 images in [0, 1], reproducible under ``seed``."""
        if count < 1:
            raise MedlearnError(f"the number of samples must be at least 1, got {count}")
        if self.classes and labels is None:
            labels = self.balanced_labels(count)
        noise = torch.Generator().manual_seed(seed)
        chunks = []
        for start in range(0, count, batch):
            size = min(batch, count - start)
            chunk_labels = None if labels is None else torch.as_tensor(labels[start : start + size])
            chunks.append(self.model.sample(size, chunk_labels, generator=noise).float())
        return ((torch.cat(chunks) + 1.0) / 2.0).clamp(0.0, 1.0).numpy()


def write_samples(
    generator: TrainedGenerator,
    images: np.ndarray,
    labels: np.ndarray | None,
    out_dir: Path,
    *,
    image_format: str = "png",
    prefix: str = "synthetic",
) -> Path:
    """One file per image marked ``synthetic`` in its metadata, and ``samples.csv`` (``path,label``) listing
    them, ready to be used as training data; returns the CSV."""

    if image_format not in SAMPLE_FORMATS:
        raise MedlearnError(f"unknown sample format {image_format!r}; choose one of {', '.join(SAMPLE_FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    modality = (generator.settings.modality or "OT").upper()
    rows = []
    for index, array in enumerate(images):
        label = generator.classes[int(labels[index])] if labels is not None else ""
        stem = f"{prefix}_{label + '_' if label else ''}{index:05d}"
        pixels = np.round(array * 255).astype(np.uint8) if image_format == "png" else array.astype(np.float32)
        image = image_from_affine(pixels, np.eye(4), modality=modality, tags={"synthetic": True})
        path = save(image, out_dir / f"{stem}.{image_format}")
        rows.append((path.name, label))
    manifest = out_dir / "samples.csv"
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "synthetic"])
        writer.writerows([(name, label, "yes") for name, label in rows])
    return manifest
