"""Reorienting volumes to their closest RAS+ axes keeps every voxel's world position, and undoes exactly."""

from __future__ import annotations

import numpy as np

from medlearn.io.geometry import image_from_affine
from medlearn.io.orientation import to_canonical


def _world(affine: np.ndarray, index) -> np.ndarray:
    return (affine @ np.array([*index, 1.0]))[:3]


def test_a_sagittal_lps_volume_becomes_ras_with_the_same_world_positions_and_comes_back():
    # array axis 0 runs anterior->posterior (A-P flipped), 1 superior->inferior, 2 left->right... in mm
    affine = np.array([[0, 0, 1.5, -40], [-1.0, 0, 0, 60], [0, -2.0, 0, 30], [0, 0, 0, 1]])
    array = np.random.default_rng(0).random((2, 5, 6, 7)).astype(np.float32)
    image = image_from_affine(array, affine)
    canonical, transform = to_canonical(image)
    assert canonical.spatial_shape == (7, 5, 6)  # x from axis 2, y from axis 0, z from axis 1
    assert np.all(np.diag(canonical.affine)[:3] > 0)  # RAS+: every axis increases along its world axis
    for index in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:  # voxel (i, j, k) of the original ...
        world = _world(affine, index)
        found = np.argwhere(np.isclose(canonical.array[0], array[0][index]))
        assert len(found) == 1 and np.allclose(_world(canonical.affine, found[0]), world)  # ... at the same place
    np.testing.assert_array_equal(transform.undo(canonical.array), array)


def test_canonical_and_2d_images_are_left_as_they_are():
    ras = image_from_affine(np.zeros((1, 4, 4, 4), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    same, transform = to_canonical(ras)
    assert same is ras and transform.is_identity
    flat = image_from_affine(np.zeros((1, 4, 5), np.float32), np.diag([-1.0, 1.0, 1.0, 1.0]))
    assert to_canonical(flat)[0] is flat
