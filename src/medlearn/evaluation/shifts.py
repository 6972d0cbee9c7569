"""Robustness shifts applied to a test case (``evaluate --shift``, the robustness benchmark).

A model (or a learned global threshold) that is only right for the exact intensities and resolution of its
training images fails silently when a scanner, stain or protocol changes. A shift spec names such changes in a
small language: ``kind:value`` steps joined by commas, applied in the order written, e.g. ``scale:1.3,noise:0.02``.

- ``scale:F``: intensities multiplied by F (> 0);
- ``offset:F``: F x the image's intensity range added (F may be negative);
- ``noise:F``: Gaussian noise of standard deviation F x the intensity range added (F >= 0), from a fixed seed;
- ``resolution:F``: the image resampled to F x its voxel spacing on every axis (F > 1: coarser) with linear
  interpolation after Gaussian anti-aliasing that widens the point-spread function from one old voxel to one new
  voxel (FWHM; sigma ``sqrt(F**2 - 1) / 2.355`` old voxels: 0.74 for F = 2, which leaves 7% of a pattern at the
  old Nyquist frequency, where skimage's ``(F - 1) / 2`` would leave 29%, i.e. aliasing), the mask by nearest
  neighbour onto the same grid. The first voxel centre stays in place and the affine's axis
  columns are rescaled (:func:`medlearn.io.resample.resample_to_spacing`), so the physical extent and every
  voxel's world position stay right; metrics are then computed on that coarser grid.

The intensity range is the 1st to 99th percentile span of each channel of the image *as given* (before any step),
so every step of a combined spec is relative to the same unshifted data. Intensity steps return float32 without
clipping or rounding (a shift can leave the original dtype's range). ``none`` is the identity. Every shifted image
carries the spec in ``tags["shift"]``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
from scipy import ndimage

from medlearn.errors import MedlearnError
from medlearn.io.image import MedicalImage
from medlearn.io.resample import resample_array, resample_to_spacing

#: Valid kinds with the rule their value must follow (used in error messages).
KINDS = {
    "scale": "a factor > 0",
    "offset": "a fraction of the intensity range (any sign)",
    "noise": "a fraction of the intensity range >= 0",
    "resolution": "a spacing factor > 0 (2 = twice as coarse)",
}
NONE = "none"
EXAMPLE = "scale:1.3,noise:0.02"
DEFAULT_SEED = 0
#: Percentiles spanning the intensity range that offset and noise are relative to.
RANGE_PERCENTILES = (1.0, 99.0)
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))


@dataclass(frozen=True)
class ShiftStep:
    """One ``kind:value`` step."""

    kind: str
    value: float

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.value:.12g}"


@dataclass(frozen=True)
class Shift:
    """A parsed shift spec: steps applied in order; deterministic given ``seed``."""

    steps: tuple[ShiftStep, ...] = ()
    seed: int = DEFAULT_SEED

    @property
    def text(self) -> str:
        """The canonical spec (``parse_shift(shift.text)`` gives the same shift), for JSON and reports."""
        return ",".join(step.text for step in self.steps) or NONE

    @property
    def changes_grid(self) -> bool:
        """True when the shift resamples (predictions and masks then live on a new grid)."""
        return any(step.kind == "resolution" for step in self.steps)

    def apply(self, image: MedicalImage, mask: MedicalImage | None = None) -> tuple[MedicalImage, MedicalImage | None]:
        """The shifted image and its mask (the same object unless the resolution changes)."""
        if not self.steps:
            return image, mask
        if mask is not None and mask.spatial_shape != image.spatial_shape:
            raise MedlearnError(
                f"mask of spatial shape {mask.spatial_shape} for an image of {image.spatial_shape}", mask.source
            )
        spread = intensity_range(image)
        rng = np.random.default_rng(self.seed)
        array = image.array
        for step in self.steps:
            if step.kind == "resolution":
                image = _with_array(image, array)
                image, mask = _coarser(image, mask, step.value)
                array = image.array
            elif step.kind == "scale":
                array = array.astype(np.float32) * np.float32(step.value)
            elif step.kind == "offset":
                array = array.astype(np.float32) + (step.value * spread).astype(np.float32)
            else:  # noise
                noise = rng.standard_normal(array.shape, dtype=np.float32) * (step.value * spread).astype(np.float32)
                array = array.astype(np.float32) + noise
        shifted = dataclasses.replace(image, array=array, tags={**image.tags, "shift": self.text})
        if mask is not None and self.changes_grid:
            mask = dataclasses.replace(mask, tags={**mask.tags, "shift": self.text})
        return shifted, mask


def parse_shift(text: str, seed: int = DEFAULT_SEED) -> Shift:
    """Parse ``kind:value[,kind:value...]`` (or ``none``); a bad spec is a :class:`MedlearnError` listing the kinds."""
    spec = str(text).strip()
    if spec.lower() == NONE:
        return Shift((), seed)
    if not spec:
        _fail(text, "the shift spec is empty")
    steps = []
    for part in spec.split(","):
        kind, colon, value = part.strip().partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            _fail(text, f"unknown shift kind {kind!r}" if kind else "an empty step")
        if not colon or not value.strip():
            _fail(text, f"{kind!r} needs a value ({KINDS[kind]}), e.g. {kind}:{_example(kind)}")
        try:
            number = float(value)
        except ValueError:
            _fail(text, f"{kind} value {value.strip()!r} is not a number ({KINDS[kind]})")
        valid = math.isfinite(number) and (
            number > 0 if kind in ("scale", "resolution") else number >= 0 if kind == "noise" else True
        )
        if not valid:
            _fail(text, f"{kind} value {value.strip()} is invalid: need {KINDS[kind]}")
        steps.append(ShiftStep(kind, number))
    return Shift(tuple(steps), seed)


def intensity_range(image: MedicalImage) -> np.ndarray:
    """Per-channel 1st-99th percentile span, broadcastable to ``image.array`` (max - min where that span is 0)."""
    flat = image.array.reshape(image.channels, -1).astype(np.float64)
    low, high = np.percentile(flat, RANGE_PERCENTILES, axis=1)
    spread = high - low
    full = flat.max(axis=1) - flat.min(axis=1)
    spread = np.where(spread > 0, spread, full)
    return spread.reshape((image.channels,) + (1,) * image.spatial_ndim)


def _coarser(image: MedicalImage, mask: MedicalImage | None, factor: float) -> tuple[MedicalImage, MedicalImage | None]:
    spacing = tuple(float(s) * factor for s in image.spacing)
    source = image
    if factor > 1:
        sigma = (0.0,) + (math.sqrt(factor**2 - 1) / FWHM_PER_SIGMA,) * image.spatial_ndim  # not across channels
        smoothed = ndimage.gaussian_filter(image.array.astype(np.float32), sigma, mode="nearest")
        source = _with_array(image, smoothed)
    shifted = resample_to_spacing(source, spacing, order=1)
    if mask is None:
        return shifted, None
    # the mask goes onto exactly the image's new grid (same shape and affine), by nearest neighbour
    labels = resample_array(mask.array, [factor] * image.spatial_ndim, shifted.spatial_shape, order=0)
    geometry = {name: getattr(shifted, name) for name in ("spacing", "origin")}
    resampled = dataclasses.replace(
        mask, array=labels, direction=shifted.direction.copy(), affine=shifted.affine.copy(), **geometry
    )
    return shifted, resampled


def _with_array(image: MedicalImage, array: np.ndarray) -> MedicalImage:
    return image if array is image.array else dataclasses.replace(image, array=array)


def _example(kind: str) -> str:
    return {"scale": "1.3", "offset": "0.1", "noise": "0.05", "resolution": "2"}[kind]


def _fail(text: str, problem: str) -> NoReturn:
    kinds = ", ".join(KINDS)
    raise MedlearnError(
        f"bad shift spec {text!r}: {problem}; valid kinds: {kinds} as kind:value, combined with commas "
        f"(e.g. {EXAMPLE}), or {NONE}"
    )
