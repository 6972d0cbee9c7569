"""A whole hybrid set on disk: synthetic lesions in real backgrounds, with exact masks and exact centres.

``medlearn data hybrid`` writes ``images/``, ``masks/`` (NIfTI, float images so no contrast is lost to
rounding), ``pairs.csv`` (``image,mask,group``: the background file is the group, so a split never puts
two lesions of the same background on both sides) and ``lesions.csv`` (radius, contrast, shape and centre
per lesion, for sensitivity by size and contrast). For detection (FROC) an image may hold several lesions or
none (``lesions_per_image``): lesions never touch, so the connected components of a mask are its lesions, and
``points/<case>.csv`` holds each lesion's centre in world millimetres (RAS+; ``x,y`` for a 2D image,
``x,y,z`` for a volume), listed in ``detection.csv`` (``image,annotation,group``). Every image, negatives
included, carries the ``hybrid`` mark in its NIfTI header, so any report that trains or evaluates on it says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from medlearn.data.files import find_image_files
from medlearn.data.hybrid import SHAPES, LesionSpec, insert_lesions
from medlearn.data.sources import br35h_samples, samples_from_csv
from medlearn.errors import MedlearnError
from medlearn.io import load, save
from medlearn.io.color import to_grey
from medlearn.io.geometry import image_from_affine
from medlearn.utils.atomic import write_csv_atomic

#: World axes of a points CSV (RAS+ millimetres), then what each point says about its lesion: only columns the
#: points reader (:func:`medlearn.io.markups.read_points_csv`) accepts, since it refuses unknown ones; the
#: contrast of each lesion is in ``lesions.csv`` (same case, same centre).
WORLD_AXES = ("x", "y", "z")
POINT_COLUMNS = ("radius_mm", "label")
#: ``lesions.csv``: the columns of the one-lesion sets first (unchanged), then the lesion index and its centre.
LESION_COLUMNS = ("case", "background", "radius_mm", "contrast_sd", "shape", "voxels", "lesion")


@dataclass(frozen=True)
class HybridSetSpec:
    """``count`` images; lesion radius x contrast levels cycled lesion by lesion over the whole set;
    ``lesions_per_image`` an inclusive range drawn uniformly per image (0: a negative image)."""

    count: int = 100
    radii_mm: tuple[float, ...] = (2.0, 4.0, 8.0)
    contrasts: tuple[float, ...] = (1.0, 2.0, 3.0)
    shape: str = "irregular"
    seed: int = 0
    lesions_per_image: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise MedlearnError(f"count must be at least 1, got {self.count}")
        if self.shape not in SHAPES:
            raise MedlearnError(f"shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if not self.radii_mm or min(self.radii_mm) <= 0:
            raise MedlearnError(f"radii must be positive millimetres, got {self.radii_mm}")
        bounds = tuple(self.lesions_per_image)
        if (
            len(bounds) != 2
            or not all(isinstance(n, int | np.integer) and not isinstance(n, bool) for n in bounds)
            or not 0 <= bounds[0] <= bounds[1]
        ):
            raise MedlearnError(
                f"lesions per image must be a range (low, high) of whole numbers with 0 <= low <= high, "
                f"got {self.lesions_per_image}"
            )


def parse_lesions_per_image(text: str) -> tuple[int, int]:
    """``"2"`` -> ``(2, 2)``, ``"0-3"`` -> ``(0, 3)``: the CLI's ``--lesions-per-image``."""
    parts = [part.strip() for part in str(text).strip().split("-")]
    if len(parts) not in (1, 2) or not all(part.isdigit() for part in parts):
        raise MedlearnError(f"--lesions-per-image takes a count or a range such as 0-3, got {text!r}")
    low, high = int(parts[0]), int(parts[-1])
    if low > high:
        raise MedlearnError(f"--lesions-per-image {text!r} runs backwards: write {high}-{low}")
    return low, high


def background_files(source: str) -> list[Path]:
    """``br35h`` -> its tumour-free ('no') images; a CSV (path/image column) or folder -> every image in it."""

    if source.lower() == "br35h":
        return sorted(s.path for s in br35h_samples() if s.label == "no")
    if source.lower().endswith(".csv"):
        return [s.path for s in samples_from_csv(source)]
    return find_image_files([Path(source)])


def make_hybrid_set(backgrounds: Sequence[Path], out_dir: Path, spec: HybridSetSpec) -> Path:
    """Write ``spec.count`` hybrid images (lesion levels cycled through radius x contrast); return ``pairs.csv``.

    A fixed lesion count draws no random number for it, so one lesion per image gives the set it always gave."""

    if not backgrounds:
        raise MedlearnError("no background images")
    rng = np.random.default_rng(spec.seed)
    out_dir = Path(out_dir)
    order = rng.permutation(len(backgrounds))
    levels = list(itertools.product(spec.radii_mm, spec.contrasts))
    low, high = spec.lesions_per_image
    pairs, detection, lesions = [], [], []
    lesion_counter, any_volume = 0, False
    for index in range(spec.count):
        source = Path(backgrounds[order[index % len(backgrounds)]])
        background = to_grey(load(source))
        background = image_from_affine(
            background.array.astype(np.float32), background.affine, modality=background.modality
        )
        how_many = low if low == high else int(rng.integers(low, high + 1))
        chosen = [levels[(lesion_counter + n) % len(levels)] for n in range(how_many)]
        lesion_counter += how_many
        specs = [LesionSpec(radius_mm=radius, contrast=contrast, shape=spec.shape) for radius, contrast in chosen]
        stem = f"hybrid_{index:04d}"
        try:
            image, masks = insert_lesions(background, specs, rng)
        except MedlearnError as error:
            raise MedlearnError(f"{stem}: {error.problem}", source) from None
        name = f"{stem}.nii.gz"
        image_path = save(image, out_dir / "images" / name)
        union = np.logical_or.reduce(masks) if masks else np.zeros(image.spatial_shape, dtype=bool)
        mask_image = image_from_affine(union[None].astype(np.uint8), image.affine, tags={"hybrid": True})
        mask_path = save(mask_image, out_dir / "masks" / name)
        axes = WORLD_AXES[: min(image.spatial_ndim, 3)]  # a 2D image's world z is constant: x, y only
        any_volume |= len(axes) == 3
        centres = [dict(zip(axes, lesion_centre(mask, image.affine), strict=False)) for mask in masks]
        points = [
            {**centre, "radius_mm": lesion.radius_mm, "label": "lesion"}
            for centre, lesion in zip(centres, specs, strict=True)
        ]
        points_path = write_csv_atomic(out_dir / "points" / f"{stem}.csv", [*axes, *POINT_COLUMNS], points)
        pairs.append((image_path.relative_to(out_dir), mask_path.relative_to(out_dir), source.name))
        detection.append((image_path.relative_to(out_dir), points_path.relative_to(out_dir), source.name))
        lesions += [
            {
                "case": name,
                "background": source.name,
                "radius_mm": lesion.radius_mm,
                "contrast_sd": lesion.contrast,
                "shape": spec.shape,
                "voxels": int(mask.sum()),
                "lesion": number,
                **centre,
            }
            for number, (mask, centre, lesion) in enumerate(zip(masks, centres, specs, strict=True))
        ]
    write_csv_atomic(out_dir / "lesions.csv", [*LESION_COLUMNS, *WORLD_AXES[: 3 if any_volume else 2]], lesions)
    write_csv_atomic(out_dir / "detection.csv", ["image", "annotation", "group"], detection)
    return write_csv_atomic(out_dir / "pairs.csv", ["image", "mask", "group"], pairs)


def lesion_centre(mask: np.ndarray, affine: np.ndarray) -> tuple[float, float, float]:
    """World position (mm, RAS+) of a lesion mask's centroid: the voxel index, padded to 3 axes, through ``affine``.

    The centroid, not the drawn centre: an irregular lesion's lobes move its middle, and a detector is scored
    against the middle of what it can see."""
    index = np.zeros(4)
    index[: mask.ndim] = ndimage.center_of_mass(mask)
    index[3] = 1.0
    x, y, z = (np.asarray(affine, dtype=float) @ index)[:3]
    return float(x), float(y), float(z)
