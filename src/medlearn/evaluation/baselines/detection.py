"""Detection baseline: Laplacian-of-Gaussian blob detection, its scales and polarity tuned on the training images.

Nodules, metastases, microcalcifications and nuclei are roughly round spots brighter or darker than their
surroundings, which is exactly what the scale-normalised Laplacian of Gaussian (Lindeberg) responds to. A network
detector that LoG blobs with tuned scales matches must not be shipped silently, so every detection evaluation scores
:class:`BlobDetector` on the same images with the same FROC (:mod:`medlearn.evaluation.detection`).

:meth:`BlobDetector.detect`:

1. standardises channel 0 by its median and robust spread (1.4826 x the median absolute deviation; the standard
   deviation when more than half the voxels are equal, e.g. air in CT). The FROC applies one score threshold to
   the candidates of *all* images, and a raw LoG response scales with each image's contrast (a scan's window, an
   MR's arbitrary units): unstandardised, the noise of a high-contrast image would outrank another image's lesions.
   Median and MAD are barely moved by the blobs themselves;
2. at each scale ``sigma_mm`` computes the scale-normalised LoG in millimetres,
   ``-sigma_mm**2 * polarity * sum_i d2/dx_i**2`` with the Gaussian's per-axis sigma ``sigma_mm / spacing_i`` voxels.
   The second derivative along each axis is divided by ``spacing_i**2`` (millimetres, not voxels): this is
   ``scipy.ndimage.gaussian_laplace(values, sigma_vox) * -sigma_mm**2 * polarity`` when the spacing is 1 mm, but
   ``gaussian_laplace`` alone sums voxel-unit derivatives, which on anisotropic grids weights the slice axis by its
   spacing squared and misjudges the blob's size. Bright blobs (``polarity`` +1) respond positively;
3. keeps the maximum over scales and its scale, and returns its local maxima (``skimage.feature.peak_local_max``,
   positive responses only) as candidates, the strongest first: score = the response, radius = best sigma x sqrt(d)
   (the radius of a ball whose LoG peaks at that sigma). Two candidates closer than ``min_distance_mm`` are one,
   the stronger kept; the neighbourhood of a maximum is a box of ``ceil(min_distance_mm / spacing_i)`` voxels
   per axis (per-axis, so a few thick slices are not merged as if they were fine pixels), then ties closer than
   ``min_distance_mm`` are removed in millimetres.

:func:`fit_blob_detector` takes the scales from the training targets' radii (``sigma = radius / sqrt(d)``; five
log-spaced scales from 0.7 x the smallest to 1.3 x the largest), ``min_distance_mm`` = the smallest radius, and
chooses the polarity and a factor on the whole scale range (``RANGE_FACTORS``) that give the highest CPM on the
training images, matched as the models are (:func:`~medlearn.evaluation.detection.match_detections`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medlearn.errors import MedlearnError, NonFiniteImageError
from medlearn.evaluation.detection import (
    ImageMatch,
    Targets,
    competition_performance_metric,
    froc_curve,
    match_detections,
)

BLOB = "log-blobs"
DESCRIPTION = (
    "Laplacian-of-Gaussian blob detection, scales from the training objects' sizes, polarity and scale range "
    "chosen for the best training CPM"
)
FORMAT = "medlearn-detection-blob-baseline"
VERSION = 1
#: Scales searched, log-spaced between SCALE_SPAN times the smallest and largest training sigma.
SCALES = 5
SCALE_SPAN = (0.7, 1.3)
#: Factors on the whole scale range tried by the fit, in order (ties go to the earlier one).
RANGE_FACTORS = (1.0, 0.7, 1.4)
#: Polarities tried by the fit, in order: bright blobs first.
POLARITIES = (1, -1)
#: Voxels above which the median and spread are estimated on an evenly strided sample.
_SPREAD_SAMPLE = 2_000_000
_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class BlobDetector:
    """Scale-normalised LoG blob detector (see the module docstring)."""

    sigmas_mm: tuple[float, ...]  # scales searched (mm); per-axis sigma in voxels = sigma_mm / spacing
    polarity: int  # +1 bright blobs on a darker background, -1 dark blobs
    min_distance_mm: float  # two candidates closer than this are one (keep the stronger)
    max_candidates: int = 200  # per image (enough to reach 8 false positives per image)
    name: str = BLOB

    def __post_init__(self) -> None:
        sigmas = tuple(float(s) for s in self.sigmas_mm)
        if not sigmas or not all(math.isfinite(s) and s > 0 for s in sigmas):
            raise MedlearnError(f"blob scales must be positive mm, got {self.sigmas_mm}")
        if self.polarity not in (1, -1):
            raise MedlearnError(f"blob polarity must be +1 (bright) or -1 (dark), got {self.polarity}")
        if not (math.isfinite(self.min_distance_mm) and self.min_distance_mm >= 0):
            raise MedlearnError(f"minimum distance must be >= 0 mm, got {self.min_distance_mm}")
        if int(self.max_candidates) < 1:
            raise MedlearnError(f"max_candidates must be >= 1, got {self.max_candidates}")
        object.__setattr__(self, "sigmas_mm", tuple(sorted(sigmas)))
        object.__setattr__(self, "polarity", int(self.polarity))
        object.__setattr__(self, "min_distance_mm", float(self.min_distance_mm))
        object.__setattr__(self, "max_candidates", int(self.max_candidates))

    def detect(self, image: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """image (C, *spatial) float (channel 0 used) -> (points (N, d) voxel coords, scores (N,), radii_mm (N,)),
        highest score first."""
        values, spacing = _standardised(image, spacing)
        response, best = _scale_space(values, spacing, self.sigmas_mm, (self.polarity,))[self.polarity]
        return _candidates(response, best, spacing, self.sigmas_mm, self.min_distance_mm, self.max_candidates)

    def describe(self) -> str:
        """One line for the console."""
        low, high = self.sigmas_mm[0], self.sigmas_mm[-1]
        scales = f"sigma {low:.2g}-{high:.2g} mm" if high > low else f"sigma {low:.2g} mm"
        return (
            f"LoG blobs, {'bright' if self.polarity > 0 else 'dark'}, {scales} ({len(self.sigmas_mm)} scales), "
            f"candidates >= {self.min_distance_mm:.2g} mm apart, at most {self.max_candidates} per image"
        )

    def to_dict(self) -> dict:
        """JSON-safe, enough to detect exactly the same candidates."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "sigmas_mm": [float(s) for s in self.sigmas_mm],
            "polarity": self.polarity,
            "min_distance_mm": self.min_distance_mm,
            "max_candidates": self.max_candidates,
        }

    @classmethod
    def from_dict(cls, values: dict, source: str | None = None) -> BlobDetector:
        """Inverse of :meth:`to_dict`; a malformed dictionary is a :class:`MedlearnError` naming ``source``."""
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise MedlearnError(f"not a {FORMAT} file", source)
        if values.get("version") != VERSION:
            raise MedlearnError(f"{FORMAT} version {values.get('version')!r} is not supported (need {VERSION})", source)
        try:
            return cls(
                sigmas_mm=tuple(float(s) for s in values["sigmas_mm"]),
                polarity=int(values["polarity"]),
                min_distance_mm=float(values["min_distance_mm"]),
                max_candidates=int(values["max_candidates"]),
                name=str(values.get("name", BLOB)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise MedlearnError(f"malformed {FORMAT} file: {error}", source) from error
        except MedlearnError as error:
            raise MedlearnError(f"malformed {FORMAT} file: {error.problem}", source) from error


def fit_blob_detector(
    images: Sequence[np.ndarray],
    spacings: Sequence[Sequence[float]],
    targets: Sequence[Targets],
    *,
    max_candidates: int = 200,
) -> BlobDetector:
    """Tune scales, polarity and minimum distance on training ``images`` ((C, *spatial), channel 0 used) with their
    ``spacings`` and ground-truth ``targets`` (on the images' grids): the combination with the best training CPM,
    ties to the first tried (bright before dark, range factors in ``RANGE_FACTORS`` order)."""
    if not len(images) == len(spacings) == len(targets):
        raise MedlearnError(f"{len(images)} images, {len(spacings)} spacings and {len(targets)} target sets")
    if not images:
        raise MedlearnError("no training images to fit the blob detector on")
    dims = {np.ndim(image) - 1 for image in images}
    if len(dims) > 1:
        raise MedlearnError(f"training images have different dimensions {sorted(dims)}")
    d = dims.pop()
    for index, (image, spacing, target) in enumerate(zip(images, spacings, targets, strict=True)):
        _check_targets(np.shape(image)[1:], spacing, target, index)
    radii = np.concatenate([t.radii_mm for t in targets])
    radii = radii[radii > 0]
    if radii.size == 0:
        raise MedlearnError(
            "the training targets hold no object with a radius (only negative images?): "
            "the blob scales are learned from the objects' sizes"
        )
    low, high = (span * r / math.sqrt(d) for span, r in zip(SCALE_SPAN, (radii.min(), radii.max()), strict=True))
    base = np.geomspace(low, high, SCALES)
    min_distance = float(radii.min())
    combos = [(polarity, factor) for polarity in POLARITIES for factor in RANGE_FACTORS]
    matches: dict[tuple[int, float], list[ImageMatch]] = {combo: [] for combo in combos}
    for image, spacing, target in zip(images, spacings, targets, strict=True):
        values, grid = _standardised(image, spacing)
        for factor in RANGE_FACTORS:
            sigmas = tuple(float(s) for s in base * factor)
            for polarity, (response, best) in _scale_space(values, grid, sigmas, POLARITIES).items():
                points, scores, _ = _candidates(response, best, grid, sigmas, min_distance, max_candidates)
                matches[polarity, factor].append(match_detections(points, scores, target))
    best_combo, best_cpm = combos[0], -math.inf
    for combo in combos:
        cpm = competition_performance_metric(froc_curve(matches[combo]))
        if math.isfinite(cpm) and cpm > best_cpm:
            best_combo, best_cpm = combo, cpm
    polarity, factor = best_combo
    return BlobDetector(tuple(float(s) for s in base * factor), polarity, min_distance, max_candidates)


def _check_targets(shape: tuple[int, ...], spacing: Sequence[float], targets: Targets, index: int) -> None:
    where = f"training image {index}"
    if targets.ndim != len(shape) or len(spacing) != len(shape):
        raise MedlearnError(
            f"{where}: {len(shape)}-dimensional image, spacing {tuple(spacing)}, {targets.ndim}-dimensional targets"
        )
    if not np.allclose(np.asarray(spacing, dtype=np.float64), targets.spacing):
        raise MedlearnError(f"{where}: image spacing {tuple(spacing)} but target spacing {targets.spacing}")
    if targets.instance_map is not None and targets.instance_map.shape != tuple(shape):
        raise MedlearnError(f"{where}: instance map of shape {targets.instance_map.shape} for an image of {shape}")


def _standardised(image: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[float, ...]]:
    """Channel 0 as float32, minus its median, over its robust spread; the spacing checked against it."""
    array = np.asarray(image)
    spacing = tuple(float(s) for s in spacing)
    if array.ndim < 2 or array.ndim - 1 != len(spacing):
        raise MedlearnError(f"image of shape {array.shape} (channels first) with spacing {spacing}")
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise MedlearnError(f"spacing must be positive mm per axis, got {spacing}")
    values = array[0].astype(np.float32)
    if not np.isfinite(values).all():
        raise NonFiniteImageError("image holds NaN or infinite values")
    flat = values.ravel()
    sample = flat[:: max(1, flat.size // _SPREAD_SAMPLE)].astype(np.float64)
    centre = float(np.median(sample))
    spread = _MAD_TO_SD * float(np.median(np.abs(sample - centre)))
    if not spread > 0:  # more than half the voxels equal (air, padding): the standard deviation instead
        spread = float(sample.std())
    values -= np.float32(centre)
    if spread > 0:
        values /= np.float32(spread)
    return values, spacing


def _normalised_log(values: np.ndarray, spacing: tuple[float, ...], sigma_mm: float) -> np.ndarray:
    """``-sigma_mm**2`` x the Laplacian in mm of the image smoothed by a Gaussian of ``sigma_mm`` (bright blobs > 0)."""
    sigma_vox = [sigma_mm / s for s in spacing]
    total = np.zeros_like(values)
    for axis, step in enumerate(spacing):
        order = [0] * values.ndim
        order[axis] = 2
        total += ndimage.gaussian_filter(values, sigma_vox, order=order, mode="nearest") / np.float32(step**2)
    total *= np.float32(-(sigma_mm**2))
    return total


def _scale_space(
    values: np.ndarray, spacing: tuple[float, ...], sigmas_mm: Sequence[float], polarities: Sequence[int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each polarity, the maximum over scales of the polarity-signed normalised LoG and the index of its scale
    (one filtering per scale serves both polarities)."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for index, sigma in enumerate(sigmas_mm):
        log = _normalised_log(values, spacing, sigma)
        for polarity in polarities:
            signed = log if polarity > 0 else -log
            if polarity not in out:
                out[polarity] = (signed.copy(), np.zeros(values.shape, dtype=np.int16))
                continue
            response, best = out[polarity]
            better = signed > response
            response[better] = signed[better]
            best[better] = index
    return out


def _candidates(
    response: np.ndarray,
    best: np.ndarray,
    spacing: tuple[float, ...],
    sigmas_mm: Sequence[float],
    min_distance_mm: float,
    max_candidates: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of the scale-space response, strongest first, no two closer than ``min_distance_mm``."""
    from scipy.spatial import cKDTree
    from skimage.feature import peak_local_max

    d = response.ndim
    half = [max(1, math.ceil(min_distance_mm / s - 1e-9)) for s in spacing]
    footprint = np.ones([2 * h + 1 for h in half], dtype=bool)
    # min_distance=1: the footprint already sets the neighbourhood per axis; peaks come sorted by response
    coords = peak_local_max(response, min_distance=1, footprint=footprint, threshold_abs=0.0, exclude_border=False)
    coords = coords.reshape(-1, d)
    if len(coords) > 1 and min_distance_mm > 0:  # equal maxima (plateaus) within one neighbourhood: keep the first
        tree = cKDTree(coords * np.asarray(spacing))
        removed = np.zeros(len(coords), dtype=bool)
        kept = []
        for i in range(len(coords)):
            if removed[i]:
                continue
            kept.append(i)
            if len(kept) == max_candidates:
                break
            removed[tree.query_ball_point(coords[i] * np.asarray(spacing), min_distance_mm * (1 - 1e-9))] = True
        coords = coords[kept]
    coords = coords[:max_candidates]
    index = tuple(coords.T)
    scores = response[index].astype(np.float64)
    radii = np.asarray(sigmas_mm, dtype=np.float64)[best[index]] * math.sqrt(d)
    return coords.astype(np.float64), scores, radii
