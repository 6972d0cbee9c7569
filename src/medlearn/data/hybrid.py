"""Hybrid data: synthetic lesions of controlled size, contrast, shape and texture in real backgrounds.

Real labelled segmentation data are scarce here; a lesion painted into a real image (a tumour-free
Br35H slice, a pyradiomics CT/MR volume, the MNI152 T1) comes with an exact mask, so sensitivity can be
measured by lesion size and contrast. Everything made here is marked ``hybrid`` in its tags, and
reports must say so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from medlearn.errors import MedlearnError
from medlearn.io.image import MedicalImage

SHAPES = ("ellipsoid", "irregular")


@dataclass(frozen=True)
class LesionSpec:
    """One lesion: radius in mm, contrast in units of the background's standard deviation inside the
    organ (negative = darker), ``shape`` ellipsoid or irregular (lobulated boundary), ``texture`` the
    relative amplitude of smoothed noise inside the lesion, ``blur_mm`` the edge softness."""

    radius_mm: float = 5.0
    contrast: float = 2.0
    shape: str = "irregular"
    texture: float = 0.2
    blur_mm: float = 0.5

    def __post_init__(self) -> None:
        if self.radius_mm <= 0:
            raise MedlearnError(f"lesion radius must be positive, got {self.radius_mm} mm")
        if self.shape not in SHAPES:
            raise MedlearnError(f"lesion shape must be one of {SHAPES}, got {self.shape!r}")


def insert_lesion(
    background: MedicalImage, spec: LesionSpec, rng: np.random.Generator, *, within: np.ndarray | None = None
) -> tuple[MedicalImage, np.ndarray]:
    """``(image with the lesion, binary mask)``; the centre is drawn inside ``within`` (default: voxels above
    the background's 20th percentile, i.e. the body, not the air), away from the borders."""
    array = background.array[0].astype(np.float32)
    spacing = np.asarray(background.spacing, dtype=float)
    region = within if within is not None else array > np.percentile(array, 20)
    radius_vox = spec.radius_mm / spacing
    margin = np.ceil(radius_vox).astype(int) + 1
    inner = np.zeros_like(region, dtype=bool)
    inner[tuple(slice(m, n - m) for m, n in zip(margin, array.shape, strict=True))] = True
    candidates = np.argwhere(region & inner)
    if len(candidates) == 0:
        raise MedlearnError(f"no room for a {spec.radius_mm} mm lesion inside the image", background.source)
    centre = candidates[rng.integers(len(candidates))]
    mask = _lesion_mask(array.shape, centre, radius_vox, spec, rng)
    organ_std = float(array[region].std()) or 1.0
    profile = ndimage.gaussian_filter(mask.astype(np.float32), sigma=spec.blur_mm / spacing)
    texture = ndimage.gaussian_filter(rng.standard_normal(array.shape).astype(np.float32), sigma=1.0)
    texture /= texture.std() or 1.0
    lesion = profile * spec.contrast * organ_std * (1 + spec.texture * texture)
    tags = {**background.tags, "hybrid": True, "lesion": {"centre_voxel": centre.tolist(), **spec.__dict__}}
    image = replace(background, array=(array + lesion)[None].astype(np.float32), tags=tags)
    return image, mask


def _lesion_mask(shape, centre, radius_vox, spec: LesionSpec, rng: np.random.Generator) -> np.ndarray:
    """Ellipsoid (random axis ratios 0.8-1.2) or its lobulated version: the radius modulated by smooth noise."""
    grid = np.indices(shape, dtype=np.float32)
    axes = radius_vox * rng.uniform(0.8, 1.2, size=len(shape))
    distance = np.sqrt(sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, axes, strict=True)))
    if spec.shape == "irregular":
        bumps = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=max(radius_vox) / 2)
        bumps /= np.abs(bumps).max() or 1.0
        distance = distance * (1 + 0.3 * bumps)
    return distance <= 1.0
