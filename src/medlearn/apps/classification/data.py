"""``classify train``: samples -> duplicate-aware split -> cached arrays -> engine -> evaluation -> report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from medlearn.apps.classification.settings import ClassifierSettings
from medlearn.data.augment import build_augmentation
from medlearn.data.dataset import ArrayClassificationDataset
from medlearn.data.preload import Preloaded, preload
from medlearn.data.records import Sample
from medlearn.data.splits import PARTS, Split, make_split
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.planning.normalization import IMAGES_MEASURED, ImageIntensity, choose_image_normalization


@dataclass
class PreparedData:
    """The split after decoding: each part's arrays and samples, plus what was skipped and grouped."""

    classes: list[str]
    parts: dict[str, Preloaded]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicate_groups: int = 0
    duplicate_images: int = 0

    def labels(self, part: str) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([index[s.label] for s in self.parts[part].samples], dtype=np.int64)

    def summary(self) -> dict:
        """Counts per part and class, for the config, the log and the report."""
        counts = {
            part: {c: int((self.labels(part) == i).sum()) for i, c in enumerate(self.classes)} for part in self.parts
        }
        return {
            "classes": self.classes,
            "counts": counts,
            "duplicate_groups": self.duplicate_groups,
            "images_in_duplicate_groups": self.duplicate_images,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def labelled_classes(samples: Sequence[Sample], source: str) -> list[str]:
    """Sorted class names; every sample must have a label and there must be at least two classes."""
    unlabelled = [s for s in samples if not s.label]
    if unlabelled:
        raise MedlearnError(f"{len(unlabelled)} images have no label (first: {unlabelled[0].path})", source)
    classes = sorted({s.label for s in samples})
    if len(classes) < 2:
        raise MedlearnError(f"classification needs at least two classes, found {classes}", source)
    return classes


def split_with_duplicate_groups(samples: list[Sample], settings: ClassifierSettings, seed: int) -> Split:
    """The task's split (:func:`medlearn.data.splits.make_split`) with the settings' fractions."""

    return make_split(
        samples,
        val=settings.val_fraction,
        test=settings.test_fraction,
        seed=seed,
        group_duplicates=settings.group_duplicates,
        duplicate_threshold=settings.duplicate_threshold,
    )


def choose_normalization(samples: Sequence[Sample], settings: ClassifierSettings, seed: int) -> ClassifierSettings:
    """``settings`` with the intensity normalisation chosen from (a seeded subset of) the training images, as the
    segmentation planner chooses it: one fixed scale when the images share one, each image's own otherwise."""
    from dataclasses import replace

    if settings.normalization is not None and settings.normalization_params:
        return settings  # already chosen (a resumed run's settings)
    rng = np.random.default_rng(seed)
    chosen = [samples[i] for i in sorted(rng.permutation(len(samples))[:IMAGES_MEASURED])]
    preprocessing = replace(settings, normalization="image", normalization_params={}).preprocessing
    levels, pixels = [], []
    for sample in chosen:
        try:
            image = load(sample.path)
            array = preprocessing.stored(image)
        except MedlearnError:
            continue  # unreadable images are reported (or refused with --strict) when the data are decoded
        modality = (settings.modality or image.modality).upper()
        levels.append(ImageIntensity.measure(array, modality, str(image.array.dtype)))
        flat = array.reshape(array.shape[0], -1)
        pixels.append(flat[:, rng.choice(flat.shape[1], size=min(2000, flat.shape[1]), replace=False)])
    if not levels:
        return replace(settings, normalization=settings.normalization or "image")
    if {level.modality for level in levels} == {"CT"}:
        reason = "CT: the HU window is one fixed scale already"
        return replace(settings, normalization="image", normalization_params={}, normalization_reason=reason)
    choice = choose_image_normalization(levels, pixels, forced=settings.normalization)
    return replace(
        settings, normalization=choice.scheme, normalization_params=choice.params, normalization_reason=choice.reason
    )


def prepare_data(
    split: Split, classes: list[str], settings: ClassifierSettings, *, strict: bool, cache_dir: Path | None
):
    """Decode every image of the split once (cached on disk), keeping each part's order."""
    everything = [s for part in PARTS for s in getattr(split, part)]
    loaded = preload(everything, settings.preprocessing, cache_dir=cache_dir, strict=strict)
    kept = {id(s): i for i, s in enumerate(loaded.samples)}
    parts = {}
    for part in PARTS:
        members = [s for s in getattr(split, part) if id(s) in kept]
        if not members and part != "test":
            raise MedlearnError(f"the {part} split has no readable images; add data or change the fractions")
        rows = [kept[id(s)] for s in members]
        parts[part] = Preloaded(loaded.arrays[rows], members)
    groups = {s.group for s in everything if s.group and s.group.startswith("dup:")}
    in_groups = sum(1 for s in everything if s.group in groups)
    return PreparedData(classes, parts, loaded.skipped, len(groups), in_groups)


def make_loaders(data: PreparedData, settings: ClassifierSettings, batch_size: int, generator):
    """Training loader (shuffled by the engine-seeded generator, augmented) and validation loader."""
    augment = None
    if settings.augment:
        augment = build_augmentation(settings.modality or "OT", spatial_dims=2)
    train = ArrayClassificationDataset(data.parts["train"].arrays, data.labels("train"), augment)
    val = ArrayClassificationDataset(data.parts["val"].arrays, data.labels("val"))
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator, drop_last=len(train) > batch_size),
        DataLoader(val, batch_size=max(batch_size, 128), shuffle=False),
    )
