"""Resampling onto another image's grid through the affines, and warping by a displacement field in mm."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.errors import MedlearnError
from medlearn.io.geometry import image_from_affine
from medlearn.io.warp import resample_to_reference, warp


def _volume(affine: np.ndarray | None = None) -> object:
    rng = np.random.default_rng(0)
    array = rng.random((1, 12, 10, 8)).astype(np.float32)
    return image_from_affine(array, np.diag([2.0, 2.0, 3.0, 1.0]) if affine is None else affine)


def test_resampling_onto_its_own_grid_is_the_identity():
    image = _volume()
    same = resample_to_reference(image, image)
    np.testing.assert_allclose(same.array, image.array, atol=1e-6)
    np.testing.assert_array_equal(same.affine, image.affine)


def test_resampling_onto_a_shifted_grid_reads_the_voxels_it_now_covers():
    image = _volume()
    shifted_affine = image.affine.copy()
    shifted_affine[:3, 3] += [4.0, 0.0, 3.0]  # two voxels along x, one along z
    reference = image_from_affine(np.zeros((1, 6, 10, 5), np.float32), shifted_affine)
    out = resample_to_reference(image, reference)
    np.testing.assert_allclose(out.array[0], image.array[0, 2:8, :, 1:6], atol=1e-6)
    np.testing.assert_array_equal(out.affine, shifted_affine)


def test_a_flipped_reference_gives_the_flipped_array_and_labels_stay_labels():
    labels = image_from_affine((_volume().array > 0.5).astype(np.uint8), np.diag([2.0, 2.0, 3.0, 1.0]))
    flipped = labels.affine @ np.array([[-1, 0, 0, 11], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    reference = image_from_affine(np.zeros((1, 12, 10, 8), np.uint8), flipped)
    out = resample_to_reference(labels, reference, order=0)
    assert out.array.dtype == np.uint8
    np.testing.assert_array_equal(out.array[0], labels.array[0, ::-1])


def test_a_constant_displacement_field_translates_and_a_zero_field_changes_nothing():
    image = _volume()
    zero = image_from_affine(np.zeros((3, 12, 10, 8), np.float32), image.affine)
    np.testing.assert_allclose(warp(image, zero).array, image.array, atol=1e-6)
    field = np.zeros((3, 12, 10, 8), np.float32)
    field[0] = 4.0  # each fixed voxel takes the moving value 4 mm (two voxels) further along x
    moved = warp(image, image_from_affine(field, image.affine))
    np.testing.assert_allclose(moved.array[0, :10], image.array[0, 2:], atol=1e-6)
    assert np.all(moved.array[0, 10:] == 0)  # beyond the moving image


def test_a_field_without_one_vector_per_axis_is_refused():
    image = _volume()
    with pytest.raises(MedlearnError, match="one channel per world axis"):
        warp(image, image_from_affine(np.zeros((2, 12, 10, 8), np.float32), image.affine))


def test_a_2d_image_resamples_by_world_position_too():
    array = np.arange(48, dtype=np.float32).reshape(1, 6, 8)
    image = image_from_affine(array, np.diag([0.5, 0.5, 1.0, 1.0]))
    shifted = image.affine.copy()
    shifted[1, 3] += 1.0  # two columns on
    out = resample_to_reference(image, image_from_affine(np.zeros((1, 6, 6), np.float32), shifted))
    np.testing.assert_allclose(out.array[0], array[0, :, 2:], atol=1e-5)
