"""The images a generator learns from: read once, square, resized, in [0, 1], with their classes.

Images of different sizes are padded to a square and resized to the model's size (stated in the log);
colour images in a grey run become grey. A grey image in a colour run (``channels=3``) is an error rather
than a silently replicated channel, since the generator would learn that some "colour" images are grey.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.generation.settings import GeneratorSettings
from medlearn.data.preload import preload
from medlearn.data.preprocess import ClassificationPreprocessing
from medlearn.data.records import Sample
from medlearn.errors import InconsistentDataError, MedlearnError
from medlearn.io.image import MedicalImage

log = logging.getLogger("medlearn")


@dataclass
class GenerationImages:
    """Preprocessed images ``(N, C, S, S)`` in [0, 1] (float16), integer labels and the class names."""

    arrays: np.ndarray
    labels: np.ndarray
    classes: list[str]
    samples: list[Sample]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, indices: Sequence[int]) -> GenerationImages:
        rows = list(indices)
        return GenerationImages(self.arrays[rows], self.labels[rows], self.classes, [self.samples[i] for i in rows])

    def tanh_range(self) -> np.ndarray:
        """The arrays as float32 in [-1, 1], the generator's output range."""
        return self.arrays.astype(np.float32) * 2.0 - 1.0

    def class_counts(self) -> dict[str, int]:
        names = self.classes or ["all"]
        return {name: int((self.labels == i).sum()) for i, name in enumerate(names)}


@dataclass(frozen=True)
class _ChannelCheckedPreprocessing:
    """The run's preprocessing, refusing a grey image when the run generates colour images."""

    preprocessing: ClassificationPreprocessing

    def to_dict(self) -> dict:
        return self.preprocessing.to_dict()

    def __call__(self, image: MedicalImage) -> np.ndarray:
        if self.preprocessing.channels == 3 and image.channels == 1:
            raise InconsistentDataError(
                "grey image in a colour (--channels 3) training set; convert it to RGB or train with --channels 1",
                image.source,
            )
        return self.preprocessing(image)


def image_classes(samples: Sequence[Sample], settings: GeneratorSettings, source: str) -> list[str]:
    """Class names for a conditional run ([] for an unconditional one); all or none of the images need a label."""
    labelled = [s for s in samples if s.label]
    if not settings.conditional or not labelled:
        return []
    if len(labelled) != len(samples):
        first = next(s for s in samples if not s.label)
        raise MedlearnError(
            f"{len(samples) - len(labelled)} of {len(samples)} images have no label (first: {first.path}); "
            "label all of them or train unconditionally (--unconditional)",
            source,
        )
    return sorted({s.label for s in labelled})


def load_generation_images(
    samples: Sequence[Sample],
    settings: GeneratorSettings,
    classes: list[str],
    *,
    strict: bool = False,
    cache_dir: Path | None = None,
    show_progress: bool = True,
) -> GenerationImages:
    """Decode and preprocess ``samples`` once (cached); unreadable files are skipped and listed unless ``strict``."""

    loaded = preload(
        samples,
        _ChannelCheckedPreprocessing(settings.preprocessing),
        cache_dir=cache_dir,
        strict=strict,
        show_progress=show_progress,
        description="Reading images",
    )
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[s.label] if classes else 0 for s in loaded.samples], dtype=np.int64)
    return GenerationImages(loaded.arrays, labels, list(classes), list(loaded.samples), loaded.skipped)


def check_enough_images(images: GenerationImages, settings: GeneratorSettings, source: str) -> None:
    """A GAN needs many images (and every class some): refuse clearly instead of training noise."""
    if len(images) < settings.min_images:
        raise MedlearnError(
            f"a GAN needs at least {settings.min_images} training images; found {len(images)} readable "
            f"(--set min_images=N lowers the bar)",
            source,
        )
    for name, count in images.class_counts().items():
        if images.classes and count < max(8, settings.min_images // (4 * len(images.classes))):
            raise MedlearnError(f"class {name!r} has only {count} training images for a conditional GAN", source)
