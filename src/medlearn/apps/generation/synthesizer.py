"""A class-conditional GAN as the synthetic-data source of the augmentation study (Frid-Adar et al. 2018).

The study hands over the labelled training images exactly as the classifier sees them (its
preprocessing: MR z-scored, other images in [0, 1]). A generator needs one bounded range, so each image
is mapped to [0, 1] by its own minimum and maximum: for a z-scored image that is exactly the
percentile-clipped original scaled to [0, 1], since a z-score is an affine map. Generated images are
mapped back the same way (z-scored per image when the real ones were), so the classifier cannot tell
real from synthetic by intensity statistics alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from medlearn.apps.generation.data import GenerationImages
from medlearn.apps.generation.model import TrainedGenerator
from medlearn.apps.generation.settings import GeneratorSettings
from medlearn.apps.generation.train import train_generator_on_arrays
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError

Sampler = Callable[[dict[int, int]], np.ndarray]


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """Each ``(C, H, W)`` image scaled by its own minimum and maximum to [0, 1] (constant images become 0)."""
    images = np.asarray(images, dtype=np.float32)
    low = images.min(axis=(1, 2, 3), keepdims=True)
    span = images.max(axis=(1, 2, 3), keepdims=True) - low
    return np.where(span > 0, (images - low) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)


def looks_z_scored(images: np.ndarray, tolerance: float = 0.15) -> bool:
    """Whether images were z-scored one by one (each has mean ~0 and standard deviation ~1)."""
    images = np.asarray(images, dtype=np.float32)
    means = images.mean(axis=(1, 2, 3))
    stds = images.std(axis=(1, 2, 3))
    return bool(np.median(np.abs(means)) < tolerance and np.median(np.abs(stds - 1.0)) < tolerance)


def z_score(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    means = images.mean(axis=(1, 2, 3), keepdims=True)
    stds = images.std(axis=(1, 2, 3), keepdims=True)
    return ((images - means) / np.where(stds > 0, stds, 1.0)).astype(np.float32)


def conditional_gan_synthesizer(
    *,
    model: str = "wgan-gp",
    minutes: float = 3.0,
    n_critic: int | None = 2,
    width: int = 32,
    min_images: int = 32,
    quiet: bool = True,
) -> Callable[[np.ndarray, np.ndarray, int, Path], Sampler]:
    """A synthesizer factory: ``factory(images, labels, seed, work_dir)`` trains a class-conditional ``model`` on
    the labelled images for ``minutes`` and returns ``sampler({label: count}) -> images`` in the input's format.

    WGAN-GP by default: in benchmarks/generation.py the conditional DCGAN collapsed to one image per class,
    which would add nothing but copies. Two critic steps per generator step rather than Gulrajani et al.'s
    five: within a few minutes, five leave the generator too few updates."""

    def factory(train_images: np.ndarray, train_labels: np.ndarray, seed: int, work_dir: Path) -> Sampler:

        train_images = np.asarray(train_images, dtype=np.float32)
        if train_images.ndim != 4 or train_images.shape[2] != train_images.shape[3]:
            raise MedlearnError(f"the synthesizer needs square (N, C, S, S) images, got {train_images.shape}")
        labels = np.asarray(train_labels, dtype=np.int64)
        classes = sorted(int(c) for c in np.unique(labels))
        z_scored = looks_z_scored(train_images)
        images = GenerationImages(
            to_unit_range(train_images).astype(np.float16),
            np.searchsorted(classes, labels),
            [str(c) for c in classes],
            [Sample(Path(f"<labelled image {i}>"), str(label)) for i, label in enumerate(labels)],
        )
        settings = GeneratorSettings(
            model=model,
            image_size=int(train_images.shape[-1]),
            channels=int(train_images.shape[1]),
            width=width,
            n_critic=n_critic,
            val_fraction=0.0,
            min_images=min_images,
            sample_every=10,
        )
        run_dir = Path(work_dir) / f"gan-seed{seed}"
        # the study's measured protocol: a near-constant learning rate that the budget interrupts (see RESULTS.md)
        training = {
            "max_minutes": minutes,
            "epochs": 100_000,
            "fit_schedule_to_budget": False,
            "seed": seed,
            "batch_size": min(64, len(images)),
        }
        train_generator_on_arrays(images, run_dir, settings, training, quiet=quiet)
        generator = TrainedGenerator.from_run_dir(run_dir, checkpoint="last")

        def sample(counts: dict[int, int]) -> np.ndarray:
            chunks = []
            for offset, (label, count) in enumerate(sorted(counts.items())):
                if count <= 0:
                    continue
                if label not in classes:
                    raise MedlearnError(f"the generator was not trained on class {label}; it knows {classes}")
                index = np.full(count, classes.index(label), dtype=np.int64)
                chunks.append(generator.sample(count, index, seed=seed * 1000 + offset))
            if not chunks:
                return np.zeros((0, *train_images.shape[1:]), dtype=np.float32)
            unit = np.concatenate(chunks)
            return z_score(unit) if z_scored else unit

        return sample

    return factory
