"""Random smooth deformations of an image that move its landmarks and label maps exactly, and contrast changes:
how one template becomes a training and test set for landmark and box localisation (issue 14), the way
SynthMorph-style pipelines make data from one atlas.

As in TorchIO, a random transform (:class:`RandomDeformation`, :class:`RandomContrast`) samples its parameters and
returns a deterministic one (:class:`Deformation`, :class:`Contrast`) that can be applied, inspected and repeated.

A :class:`Deformation` is a displacement field on the *output* grid in the convention of
:mod:`medlearn.io.warp`: the deformed image at world position ``x`` takes the template's value at
``x + u(x)``. Images and label maps are pulled through it (:func:`medlearn.io.warp.warp`); points go the other
way, so a template landmark ``p`` lands where ``x + u(x) = p``, found by fixed-point iteration ``x <- p - u(x)``,
which converges because the field is kept smooth and free of folding (every drawn field is checked: the Jacobian
determinant of ``x -> x + u(x)`` stays positive everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from medlearn.errors import MedlearnError
from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage
from medlearn.io.warp import voxel_grid_world, warp

#: A drawn field whose smallest Jacobian determinant falls below this is drawn again (no folding, and far from it).
MIN_JACOBIAN = 0.2
#: Fixed-point iterations and the tolerance (mm) a mapped point must reach.
POINT_ITERATIONS = 100
POINT_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class Deformation:
    """A displacement field (mm, RAS world axes, ``(3, *grid)``) on the output grid ``affine``/``shape``."""

    field: MedicalImage

    def apply(self, image: MedicalImage, *, order: int = 1) -> MedicalImage:
        """``image`` deformed onto the output grid (``order=0`` for label maps: values kept)."""
        return warp(image, self.field, order=order)

    def map_points(self, world: np.ndarray) -> np.ndarray:
        """Template points ``(n, 3)`` (world mm) -> where they lie in the deformed image.

        Raises when a point does not converge (a field that folds there) or lands off the grid, instead of returning
        a wrong position."""
        target = np.asarray(world, dtype=np.float64).reshape(-1, 3)
        position = target.copy()
        for _ in range(POINT_ITERATIONS):
            moved = position + self.displacement_at(position)
            residual = np.linalg.norm(moved - target, axis=1)
            if residual.max(initial=0.0) < POINT_TOLERANCE_MM:
                return self._inside(position)
            position = target - self.displacement_at(position)
        raise MedlearnError(
            f"a point did not converge under the deformation (residual {residual.max():.3g} mm): the field folds"
        )

    def _voxels(self, world: np.ndarray) -> np.ndarray:
        """World points ``(n, 3)`` as voxel coordinates of the field's grid."""
        inverse = np.linalg.inv(self.field.affine)
        return (inverse[:3, :3] @ world.T + inverse[:3, 3:]).T

    def _inside(self, world: np.ndarray) -> np.ndarray:
        """``world`` unchanged if every point lies on the field's grid (half a voxel of margin)."""
        voxels = self._voxels(world)
        shape = np.asarray(self.field.spatial_shape)
        outside = np.any((voxels < -0.5) | (voxels > shape - 0.5), axis=1)
        if outside.any():
            raise MedlearnError(
                f"point {int(np.argmax(outside)) + 1} maps outside the deformed image "
                f"(to {tuple(np.round(world[outside][0], 1))} mm): a smaller deformation keeps it in view"
            )
        return world

    def displacement_at(self, world: np.ndarray) -> np.ndarray:
        """The field interpolated (linearly) at world positions ``(n, 3)``; constant beyond the grid's edge."""
        voxels = np.clip(self._voxels(world), 0, np.asarray(self.field.spatial_shape) - 1)
        return np.stack(
            [ndimage.map_coordinates(channel, voxels.T, order=1, mode="nearest") for channel in self.field.array],
            axis=1,
        )

    def min_jacobian(self) -> float:
        """The smallest Jacobian determinant of ``x -> x + u(x)`` over the grid (<= 0 means folding)."""
        return float(jacobian_determinant(self.field).min())


def jacobian_determinant(field: MedicalImage) -> np.ndarray:
    """Jacobian determinant of ``x -> x + u(x)`` at every voxel of a 2D or 3D displacement field (mm, one channel
    per in-plane world axis), by central differences along the grid's axes mapped to world axes through the affine.
    Values <= 0 mark folding."""
    ndim = field.spatial_ndim
    if ndim not in (2, 3) or field.channels != ndim:
        raise MedlearnError(
            f"the Jacobian needs a 2D or 3D field with one channel per axis, got {field.channels}", field.source
        )
    # d u / d index, one (d, d) matrix per voxel: rows are field components, columns grid axes
    by_index = np.stack([np.stack(np.gradient(channel), axis=0) for channel in field.array], axis=0)
    steps = np.asarray(field.affine[:ndim, :ndim], dtype=np.float64)  # world = steps @ index + origin
    jacobian = np.einsum("ca...,aw->cw...", by_index, np.linalg.inv(steps))  # d u / d world
    jacobian = jacobian + np.eye(ndim).reshape(ndim, ndim, *([1] * ndim))
    return np.linalg.det(np.moveaxis(jacobian, (0, 1), (-2, -1)))


@dataclass(frozen=True)
class RandomDeformation:
    """A random rotation (degrees, each axis), isotropic scaling (fraction), translation (mm, each axis) about the
    grid's centre, plus a smooth elastic field: Gaussian control-point displacements (SD ``elastic_mm``) on a
    ``control_spacing_mm`` lattice, interpolated by cubic splines."""

    rotation_deg: float = 8.0
    scale: float = 0.08
    translation_mm: float = 8.0
    elastic_mm: float = 3.0
    control_spacing_mm: float = 32.0
    max_draws: int = 20

    def __post_init__(self) -> None:
        values = (self.rotation_deg, self.scale, self.translation_mm, self.elastic_mm)
        if min(values) < 0 or self.control_spacing_mm <= 0 or not 0 <= self.scale < 0.5:
            raise MedlearnError(
                "deformation sizes must be non-negative (scale below 0.5) and the control spacing positive"
            )

    def sample(self, grid: MedicalImage, rng: np.random.Generator) -> Deformation:
        """A deformation on ``grid`` (a 3D image: its shape and affine), redrawn until it does not fold."""
        if grid.spatial_ndim != 3:
            raise MedlearnError("synthetic deformations are made for 3D images", grid.source)
        for _ in range(self.max_draws):
            deformation = Deformation(self._field(grid, rng))
            if deformation.min_jacobian() > MIN_JACOBIAN:
                return deformation
        raise MedlearnError(
            f"no deformation without folding in {self.max_draws} draws: make the elastic part smaller "
            f"(elastic {self.elastic_mm} mm over {self.control_spacing_mm} mm)"
        )

    def _field(self, grid: MedicalImage, rng: np.random.Generator) -> MedicalImage:
        world = voxel_grid_world(grid.spatial_shape, grid.affine)
        centre = world.reshape(3, -1).mean(axis=1)
        rotation = Rotation.from_euler("xyz", rng.uniform(-1, 1, 3) * self.rotation_deg, degrees=True).as_matrix()
        scale = 1.0 + rng.uniform(-1, 1) * self.scale
        translation = rng.uniform(-1, 1, 3) * self.translation_mm
        relative = world.reshape(3, -1) - centre[:, None]
        # template position of each output voxel: a rigid-plus-scale pull-back about the centre
        pulled = (scale * rotation) @ relative + centre[:, None] + translation[:, None]
        field = (pulled - world.reshape(3, -1)).reshape(world.shape)
        if self.elastic_mm > 0:
            field += self._elastic(grid, rng)
        return image_from_affine(field.astype(np.float32), grid.affine, modality="OT")

    def _elastic(self, grid: MedicalImage, rng: np.random.Generator) -> np.ndarray:
        """Control points ``control_spacing_mm`` apart whatever the grid's size (at least 4 a side, for cubic
        splines; on a small grid the lattice reaches beyond it), so the field's smoothness is set in mm."""
        shape = np.asarray(grid.spatial_shape)
        extent = (shape - 1) * np.asarray(grid.spacing)
        control = np.maximum(np.ceil(extent / self.control_spacing_mm).astype(int) + 1, 4)
        # lattice coordinates of each voxel along each axis (voxel position in mm / control spacing)
        axes = [np.arange(n) * step / self.control_spacing_mm for n, step in zip(shape, grid.spacing, strict=True)]
        points = np.meshgrid(*axes, indexing="ij")
        out = np.empty((3, *grid.spatial_shape))
        for axis in range(3):
            coarse = rng.normal(0.0, self.elastic_mm, control)
            out[axis] = ndimage.map_coordinates(coarse, points, order=3, mode="nearest")
        return out


@dataclass(frozen=True)
class Contrast:
    """A monotone contrast change of a foreground: intensities scaled to [0, 1] by the foreground's 1st-99th
    percentiles, raised to ``gamma``, optionally inverted (dark becomes bright, a T1 turned T2-like), back to the
    original range. The background (at most ``background_fraction`` of the 99th percentile of the non-zero
    voxels, which takes in the faint rim that interpolation leaves) stays as it is."""

    gamma: float = 1.0
    invert: bool = False
    background_fraction: float = 0.1

    def apply(self, image: MedicalImage) -> MedicalImage:
        array = image.array.astype(np.float32)
        nonzero = array[array > 0]
        if not nonzero.size or (self.gamma == 1.0 and not self.invert):
            return image
        foreground = array > self.background_fraction * np.percentile(nonzero, 99)
        low, high = np.percentile(array[foreground], [1, 99])
        scaled = np.clip((array - low) / max(high - low, 1e-6), 0, 1) ** self.gamma
        if self.invert:
            scaled = 1.0 - scaled
        changed = np.where(foreground, low + scaled * (high - low), array).astype(np.float32)
        return image_from_affine(changed, image.affine, modality=image.modality, tags=dict(image.tags))


@dataclass(frozen=True)
class RandomContrast:
    """Gamma drawn log-uniformly in ``[1/max_gamma, max_gamma]``; inversion with probability ``invert``."""

    max_gamma: float = 1.0
    invert: float = 0.0

    def sample(self, rng: np.random.Generator) -> Contrast:
        gamma = float(np.exp(rng.uniform(-1, 1) * np.log(self.max_gamma))) if self.max_gamma > 1 else 1.0
        return Contrast(gamma=gamma, invert=bool(rng.random() < self.invert))
