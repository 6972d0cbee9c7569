"""Crops keep the world position of what they cut, and paste back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.errors import MedlearnError
from medlearn.io.crop import crop_around
from medlearn.io.geometry import image_from_affine, voxel_to_world


def _image(shape=(20, 30, 10)):
    affine = np.array([[0.0, -2.0, 0, 50], [1.5, 0, 0, -20], [0, 0, 3.0, 7], [0, 0, 0, 1]])  # oblique axis order
    return image_from_affine(np.arange(np.prod(shape), dtype=np.float32).reshape(1, *shape), affine)


def test_a_crop_keeps_every_voxel_at_its_world_position() -> None:
    image = _image()
    crop = crop_around(image, np.array([5, 8, 2, 9, 14, 4.0]), margin_mm=3.0)
    # margins in voxels: ceil(3 / spacing) = 2, 2, 1 (spacings 1.5, 2, 3)
    assert crop.low == (3, 6, 1) and crop.high == (12, 17, 6)
    cut = crop.apply(image)
    assert cut.spatial_shape == (9, 11, 5)
    voxel = np.array([[2.0, 3.0, 1.0]])
    np.testing.assert_allclose(
        voxel_to_world(cut.affine, voxel), voxel_to_world(image.affine, voxel + np.array(crop.low))
    )
    assert cut.array[0, 2, 3, 1] == image.array[0, 5, 9, 2]


def test_paste_puts_the_region_back_and_fills_the_rest() -> None:
    image = _image((8, 8, 8))
    crop = crop_around(image, np.array([2, 2, 2, 4, 4, 4.0]), margin_mm=0.0)
    region = np.ones((2, *crop.apply(image).spatial_shape), np.float32)
    pasted = crop.paste(region, fill=[1.0, 0.0])
    assert pasted.shape == (2, 8, 8, 8)
    assert pasted[1].sum() == region[1].sum() and pasted[0].min() == 1.0


def test_no_box_is_the_whole_image_and_a_foreign_image_is_refused() -> None:
    image = _image()
    whole = crop_around(image, None, 5.0)
    assert whole.is_whole and whole.apply(image) is image
    with pytest.raises(MedlearnError, match="crop made for shape"):
        whole.apply(_image((4, 4, 4)))


def test_a_box_at_the_edge_is_clipped_to_the_image() -> None:
    image = _image()
    crop = crop_around(image, np.array([0, 0, 0, 19, 29, 9.0]), margin_mm=10.0)
    assert crop.low == (0, 0, 0) and crop.high == (20, 30, 10)
