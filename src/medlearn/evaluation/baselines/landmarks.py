"""Landmark baseline: template matching, the classical way to find a known anatomical point.

For each landmark the fit averages the standardised neighbourhoods of the training images around it (a mean
template) and the landmarks' world positions (a prior location). :meth:`TemplateMatcher.locate` searches a
box around the prior location, as large as the training landmarks strayed from it plus a margin, for the
highest normalised cross-correlation with the template (``skimage.feature.match_template``, 2D or 3D) and
refines the peak between voxels. It sees the images as the network does (the plan's grid and normalisation);
it knows nothing of other landmarks or of anatomy beyond its template, so a network that does not beat it has
not learned more than the local appearance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.inference.peaks import refine_peak
from medlearn.utils.atomic import atomic_path

#: Half-size of the templates in voxels of the plan's grid (a 13-voxel cube, 26 mm at 2 mm).
TEMPLATE_HALF = 6
#: Search box: the training landmarks' largest distance from their mean, times this, plus SEARCH_MARGIN_MM.
SEARCH_FACTOR, SEARCH_MARGIN_MM = 1.5, 10.0
NAME = "template-matching"


@dataclass(frozen=True)
class TemplateMatcher:
    """Mean templates and prior world positions of named landmarks (see the module docstring)."""

    names: tuple[str, ...]
    templates: np.ndarray  # (K, *template) standardised mean neighbourhoods
    mean_world: np.ndarray  # (K, 3) RAS mm
    search_mm: np.ndarray  # (K,) half-size of the search box
    name: str = NAME

    def describe(self) -> str:
        side = self.templates.shape[1]
        return (
            f"template matching: mean {side}-voxel templates of {len(self.names)} landmarks, searched within "
            f"{float(np.min(self.search_mm)):.0f}-{float(np.max(self.search_mm)):.0f} mm of their mean positions"
        )

    def locate(self, image: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``image`` ``(C, *spatial)`` on a grid with voxel-to-world ``affine`` -> landmark voxel positions
        ``(K, d)`` and their correlation scores ``(K,)``."""
        from skimage.feature import match_template

        grey = np.asarray(image[0], dtype=np.float32)
        ndim = grey.ndim
        steps, origin = np.asarray(affine)[:3, :ndim], np.asarray(affine)[:3, 3]
        spacing = np.linalg.norm(steps, axis=0)
        positions, scores = [], []
        for template, world, search in zip(self.templates, self.mean_world, self.search_mm, strict=True):
            centre, *_ = np.linalg.lstsq(steps, world - origin, rcond=None)
            reach = np.ceil(search / spacing).astype(int) + TEMPLATE_HALF
            low = np.clip(np.floor(centre).astype(int) - reach, 0, np.asarray(grey.shape) - 1)
            high = np.clip(np.ceil(centre).astype(int) + reach + 1, 1, np.asarray(grey.shape))
            region = grey[tuple(slice(a, b) for a, b in zip(low, high, strict=True))]
            if any(n < t for n, t in zip(region.shape, template.shape, strict=True)):
                region = np.pad(region, [(0, max(0, t - n)) for n, t in zip(region.shape, template.shape, strict=True)])
            correlation = match_template(region, template, pad_input=True, mode="reflect")
            peak = np.asarray(np.unravel_index(int(np.argmax(correlation)), correlation.shape))
            refined = refine_peak(correlation + 1.0 + 1e-6, peak)  # shifted positive for the log-parabola
            positions.append(refined + low)
            scores.append(float(correlation[tuple(peak)]))
        return np.array(positions).reshape(len(self.names), ndim), np.array(scores)

    def save(self, path: Path) -> Path:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                names=np.array(self.names, dtype=str),
                templates=self.templates,
                mean_world=self.mean_world,
                search_mm=self.search_mm,
            )
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> TemplateMatcher:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    tuple(str(n) for n in data["names"]),
                    data["templates"].astype(np.float32),
                    data["mean_world"].astype(np.float64),
                    data["search_mm"].astype(np.float64),
                )
        except (OSError, KeyError, ValueError) as error:
            raise MedlearnError(f"not a template-matching baseline ({error})", path) from None


def fit_template_matcher(
    images: Sequence[np.ndarray],
    affines: Sequence[np.ndarray],
    landmarks: Sequence[np.ndarray],
    names: Sequence[str],
) -> TemplateMatcher:
    """Mean standardised neighbourhoods and mean world positions of each landmark over the training images
    (``images`` ``(C, *spatial)`` on grids with ``affines``; ``landmarks`` ``(K, d)`` voxels, NaN = not marked)."""
    if not images:
        raise MedlearnError("template matching needs at least one training image")
    ndim = images[0].ndim - 1
    side = 2 * TEMPLATE_HALF + 1
    templates, mean_world, search = [], [], []
    for k in range(len(names)):
        patches, worlds = [], []
        for image, affine, points in zip(images, affines, landmarks, strict=True):
            point = np.asarray(points[k], dtype=float)
            if np.isnan(point).any():
                continue
            patches.append(_standardised(_neighbourhood(np.asarray(image[0], np.float32), point, side)))
            worlds.append(np.asarray(affine)[:3, :ndim] @ point + np.asarray(affine)[:3, 3])
        if not patches:
            raise MedlearnError(f"no training image marks landmark {names[k]!r}")
        worlds = np.array(worlds)
        centre = worlds.mean(axis=0)
        templates.append(_standardised(np.mean(patches, axis=0)))
        mean_world.append(centre)
        search.append(SEARCH_FACTOR * float(np.linalg.norm(worlds - centre, axis=1).max()) + SEARCH_MARGIN_MM)
    return TemplateMatcher(tuple(names), np.array(templates, dtype=np.float32), np.array(mean_world), np.array(search))


def _neighbourhood(grey: np.ndarray, point: np.ndarray, side: int) -> np.ndarray:
    """The ``side``-voxel cube around the voxel nearest ``point`` (reflected beyond the edges)."""
    half = side // 2
    padded = np.pad(grey, half, mode="reflect")
    centre = np.clip(np.rint(point).astype(int), 0, np.asarray(grey.shape) - 1) + half
    return padded[tuple(slice(c - half, c + half + 1) for c in centre)]


def _standardised(patch: np.ndarray) -> np.ndarray:
    return ((patch - patch.mean()) / max(float(patch.std()), 1e-6)).astype(np.float32)
