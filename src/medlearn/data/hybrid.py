"""Hybrid data: synthetic lesions of controlled size, contrast, shape and texture in real backgrounds.

Real labelled segmentation data are scarce here; a lesion painted into a real image (a tumour-free
Br35H slice, a pyradiomics CT/MR volume, the MNI152 T1) comes with an exact mask, so sensitivity can be
measured by lesion size and contrast. Several lesions in one image (:func:`insert_lesions`) keep apart, so
each is one connected component of the mask and one point for detection. Everything made here is marked
``hybrid`` in its tags, and reports must say so.
"""

from __future__ import annotations

from collections.abc import Sequence
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


#: Lesions of one image never touch: at least this many clear voxels between two masks along every axis, so the
#: connected components of a mask are its lesions (besides the gap in millimetres, see :func:`insert_lesion`).
GAP_VOXELS = 2
#: Placements tried before a crowded image is reported instead of looping for ever.
PLACEMENT_TRIES = 50


def insert_lesion(
    background: MedicalImage,
    spec: LesionSpec,
    rng: np.random.Generator,
    *,
    within: np.ndarray | None = None,
    avoid: np.ndarray | None = None,
    gap_mm: float | None = None,
) -> tuple[MedicalImage, np.ndarray]:
    """``(image with the lesion, binary mask)``; the centre is drawn inside ``within`` (default: voxels above
    the background's 20th percentile, i.e. the body, not the air), away from the borders.

    ``avoid`` (a mask of lesions already there) keeps the new mask :data:`GAP_VOXELS` clear voxels and
    ``gap_mm`` (default: the lesion's radius) away from it, so lesions stay separate for detection; the
    placement is retried :data:`PLACEMENT_TRIES` times, then a :class:`MedlearnError` says the image is full.
    Without ``avoid`` the random draws are those of a single lesion, so a seed gives the same lesion as ever.
    """
    array = background.array[0].astype(np.float32)
    region = within if within is not None else array > np.percentile(array, 20)
    change, mask, centre = _draw_lesion(background, array, region, spec, rng, avoid, gap_mm)
    tags = {**background.tags, "hybrid": True, "lesion": {"centre_voxel": centre.tolist(), **spec.__dict__}}
    image = replace(background, array=(array + change)[None].astype(np.float32), tags=tags)
    return image, mask


def insert_lesions(
    background: MedicalImage,
    specs: Sequence[LesionSpec],
    rng: np.random.Generator,
    *,
    within: np.ndarray | None = None,
    gap_mm: float | None = None,
) -> tuple[MedicalImage, list[np.ndarray]]:
    """``(image with every lesion, one binary mask per lesion)``: lesions that neither overlap nor touch.

    Each lesion is placed and scaled against the untouched background (its body region and standard deviation),
    so its contrast means the same as a lone lesion's; ``gap_mm`` defaults to the largest radius of the new
    lesion and those already placed. No specs: the background unchanged, still marked ``hybrid`` (a negative
    image of a hybrid set must not be told apart by its header).
    """
    array = background.array[0].astype(np.float32)
    region = within if within is not None else array > np.percentile(array, 20)
    total: np.ndarray | None = None
    masks: list[np.ndarray] = []
    placed: list[dict] = []
    for spec in specs:
        avoid = np.logical_or.reduce(masks) if masks else None
        gap = gap_mm if gap_mm is not None else max([spec.radius_mm] + [lesion["radius_mm"] for lesion in placed])
        change, mask, centre = _draw_lesion(background, array, region, spec, rng, avoid, gap)
        total = change if total is None else total + change
        masks.append(mask)
        placed.append({"centre_voxel": centre.tolist(), **spec.__dict__})
    tags = {**background.tags, "hybrid": True, "lesions": placed}
    pixels = array if total is None else array + total
    return replace(background, array=pixels[None].astype(np.float32), tags=tags), masks


def _draw_lesion(
    background: MedicalImage,
    array: np.ndarray,
    region: np.ndarray,
    spec: LesionSpec,
    rng: np.random.Generator,
    avoid: np.ndarray | None,
    gap_mm: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(intensity change, mask, centre voxel)`` of one lesion in ``array``, clear of ``avoid``."""
    spacing = np.asarray(background.spacing, dtype=float)
    radius_vox = spec.radius_mm / spacing
    margin = np.ceil(radius_vox).astype(int) + 1
    inner = np.zeros_like(region, dtype=bool)
    inner[tuple(slice(m, n - m) for m, n in zip(margin, array.shape, strict=True))] = True
    allowed = region & inner
    forbidden = None
    if avoid is not None and avoid.shape != array.shape:
        raise MedlearnError(f"the mask to avoid is {avoid.shape}, the image {array.shape}", background.source)
    if avoid is not None and avoid.any():
        gap_mm = spec.radius_mm if gap_mm is None else gap_mm
        cube = ndimage.generate_binary_structure(array.ndim, array.ndim)
        distance_mm = ndimage.distance_transform_edt(~avoid, sampling=spacing)
        forbidden = ndimage.binary_dilation(avoid, structure=cube, iterations=GAP_VOXELS) | (distance_mm <= gap_mm)
        # a centre nearer than the lesion's smallest reach (axes x0.8, lobes /1.3) would always fail: skip it
        allowed &= distance_mm > gap_mm + 0.6 * spec.radius_mm
    candidates = np.argwhere(allowed)
    if len(candidates) == 0:
        beside = "" if forbidden is None else f" at least {gap_mm:g} mm from the lesions already placed"
        raise MedlearnError(f"no room for a {spec.radius_mm} mm lesion inside the image{beside}", background.source)
    for _ in range(PLACEMENT_TRIES):
        centre = candidates[rng.integers(len(candidates))]
        mask = _lesion_mask(array.shape, centre, radius_vox, spec, rng)
        if forbidden is None or not (mask & forbidden).any():
            break
    else:
        raise MedlearnError(
            f"no room for a {spec.radius_mm} mm lesion at least {GAP_VOXELS} voxels and {gap_mm:g} mm from the "
            f"lesions already placed ({PLACEMENT_TRIES} tries); ask for fewer or smaller lesions per image",
            background.source,
        )
    organ_std = float(array[region].std()) or 1.0
    profile = ndimage.gaussian_filter(mask.astype(np.float32), sigma=spec.blur_mm / spacing)
    texture = ndimage.gaussian_filter(rng.standard_normal(array.shape).astype(np.float32), sigma=1.0)
    texture /= texture.std() or 1.0
    return profile * spec.contrast * organ_std * (1 + spec.texture * texture), mask, centre


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
