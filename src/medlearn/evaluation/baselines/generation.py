"""The classical baseline of image synthesis: a Gaussian in PCA space, per class.

Each class's training images are flattened; their mean and leading principal components (with the variance
along each) define a Gaussian, and sampling draws ``mean + sum_k z_k sqrt(var_k) u_k`` with ``z ~ N(0, 1)``.
It captures the average anatomy and its main modes of variation in seconds, with no adversarial training: a GAN
whose samples are not closer to the real images (FID, KID) than these is not worth its training. Stored as an
``.npz`` (no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.utils.atomic import atomic_path

NAME = "pca-gaussian"
DESCRIPTION = (
    "a Gaussian in PCA space per class (mean image + leading principal components), fitted on the training images"
)
#: Principal components kept per class (capped by the number of images).
COMPONENTS = 50


@dataclass
class PCAGaussian:
    """Per class ``k``: ``means[k]`` ``(D,)``, ``components[k]`` ``(M, D)`` (rows), ``std[k]`` ``(M,)``."""

    means: np.ndarray
    components: np.ndarray
    std: np.ndarray
    shape: tuple[int, ...]
    classes: list[str]

    name = NAME

    def sample(self, count: int, labels: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        """``count`` images ``(N, C, S, S)`` in [0, 1]; ``labels`` (class indices) for a per-class model."""
        rng = np.random.default_rng(seed)
        labels = np.zeros(count, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        if len(labels) != count:
            raise ValueError(f"{len(labels)} labels for {count} samples")
        labels = np.clip(labels, 0, len(self.means) - 1)
        out = np.empty((count, int(np.prod(self.shape))), dtype=np.float32)
        for k in np.unique(labels):
            rows = np.flatnonzero(labels == k)
            z = rng.standard_normal((len(rows), self.components.shape[1]))
            out[rows] = self.means[k] + (z * self.std[k]) @ self.components[k]
        return np.clip(out, 0.0, 1.0).reshape(count, *self.shape)

    def save(self, path: str | Path) -> Path:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                means=self.means,
                components=self.components,
                std=self.std,
                shape=np.asarray(self.shape),
                classes=np.asarray(self.classes, dtype=str),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> PCAGaussian:
        try:
            with np.load(path, allow_pickle=False) as stored:
                return cls(
                    stored["means"],
                    stored["components"],
                    stored["std"],
                    tuple(int(n) for n in stored["shape"]),
                    [str(c) for c in stored["classes"]],
                )
        except (OSError, KeyError, ValueError) as error:
            raise MedlearnError(f"not a PCA-Gaussian baseline file ({error})", path) from None


def fit_pca_gaussian(
    images: np.ndarray, labels: np.ndarray | None, classes: Sequence[str], components: int = COMPONENTS
) -> PCAGaussian:
    """Fit on ``(N, C, S, S)`` images in [0, 1] (per class when ``classes`` has more than one)."""
    images = np.asarray(images, dtype=np.float32)
    flat = images.reshape(len(images), -1)
    groups = list(range(len(classes))) if len(classes) > 1 else [0]
    labels = np.zeros(len(images), np.int64) if labels is None or len(classes) <= 1 else np.asarray(labels)
    means, comps, stds = [], [], []
    kept = max(1, min(components, min(max(1, int((labels == k).sum()) - 1) for k in groups)))
    for k in groups:
        members = flat[labels == k]
        if len(members) < 2:
            raise MedlearnError(f"class {classes[k] if classes else k} has fewer than 2 training images")
        mean = members.mean(axis=0)
        _, singular, vt = np.linalg.svd(members - mean, full_matrices=False)
        means.append(mean)
        comps.append(vt[:kept])
        stds.append(singular[:kept] / np.sqrt(len(members) - 1))
    return PCAGaussian(np.stack(means), np.stack(comps), np.stack(stds), tuple(images.shape[1:]), list(classes))
