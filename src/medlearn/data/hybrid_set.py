"""A whole hybrid segmentation set on disk: one synthetic lesion per real background, with exact masks.

``medlearn data hybrid`` writes ``images/``, ``masks/`` (NIfTI, float images so no contrast is lost to
rounding), ``pairs.csv`` (``image,mask,group``: the background file is the group, so a split never puts
two lesions of the same background on both sides) and ``lesions.csv`` (radius, contrast, shape per case,
for sensitivity by size and contrast). Every image carries the ``hybrid`` mark in its NIfTI header, so
any report that trains or evaluates on it says so.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.data.files import find_image_files
from medlearn.data.hybrid import SHAPES, LesionSpec, insert_lesion
from medlearn.data.sources import br35h_samples, samples_from_csv
from medlearn.errors import MedlearnError
from medlearn.io import load, save
from medlearn.io.color import to_grey
from medlearn.io.geometry import image_from_affine
from medlearn.utils.atomic import atomic_path


@dataclass(frozen=True)
class HybridSetSpec:
    count: int = 100
    radii_mm: tuple[float, ...] = (2.0, 4.0, 8.0)
    contrasts: tuple[float, ...] = (1.0, 2.0, 3.0)
    shape: str = "irregular"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise MedlearnError(f"count must be at least 1, got {self.count}")
        if self.shape not in SHAPES:
            raise MedlearnError(f"shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if not self.radii_mm or min(self.radii_mm) <= 0:
            raise MedlearnError(f"radii must be positive millimetres, got {self.radii_mm}")


def background_files(source: str) -> list[Path]:
    """``br35h`` -> its tumour-free ('no') images; a CSV (path/image column) or folder -> every image in it."""

    if source.lower() == "br35h":
        return sorted(s.path for s in br35h_samples() if s.label == "no")
    if source.lower().endswith(".csv"):
        return [s.path for s in samples_from_csv(source)]
    return find_image_files([Path(source)])


def make_hybrid_set(backgrounds: Sequence[Path], out_dir: Path, spec: HybridSetSpec) -> Path:
    """Write ``spec.count`` hybrid cases (cycling through radius x contrast) and return ``pairs.csv``."""

    if not backgrounds:
        raise MedlearnError("no background images")
    rng = np.random.default_rng(spec.seed)
    out_dir = Path(out_dir)
    order = rng.permutation(len(backgrounds))
    levels = list(itertools.product(spec.radii_mm, spec.contrasts))
    pairs, lesions = [], []
    for index in range(spec.count):
        source = Path(backgrounds[order[index % len(backgrounds)]])
        background = to_grey(load(source))
        background = image_from_affine(
            background.array.astype(np.float32), background.affine, modality=background.modality
        )
        radius, contrast = levels[index % len(levels)]
        lesion = LesionSpec(radius_mm=radius, contrast=contrast, shape=spec.shape)
        image, mask = insert_lesion(background, lesion, rng)
        name = f"hybrid_{index:04d}.nii.gz"
        image_path = save(image, out_dir / "images" / name)
        mask_image = image_from_affine(mask[None].astype(np.uint8), image.affine, tags={"hybrid": True})
        mask_path = save(mask_image, out_dir / "masks" / name)
        pairs.append((image_path.relative_to(out_dir), mask_path.relative_to(out_dir), source.name))
        lesions.append((name, source.name, radius, contrast, spec.shape, int(mask.sum())))
    _write_csv(out_dir / "lesions.csv", ["case", "background", "radius_mm", "contrast_sd", "shape", "voxels"], lesions)
    return _write_csv(out_dir / "pairs.csv", ["image", "mask", "group"], pairs)


def _write_csv(path: Path, header: list[str], rows: list) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path
