"""Synthetic lesions in real backgrounds: exact masks, controlled size and contrast, marked as hybrid."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.data.hybrid import LesionSpec, insert_lesion
from medlearn.errors import MedlearnError


@pytest.fixture(scope="module")
def brain(shared_data):
    from medlearn.io import load

    return load(shared_data / "pyradiomics/brain1_image.nrrd")


def test_lesion_has_the_asked_size_and_contrast(brain):
    rng = np.random.default_rng(0)
    spec = LesionSpec(radius_mm=8.0, contrast=3.0, shape="ellipsoid", texture=0.0, blur_mm=0.1)
    image, mask = insert_lesion(brain, spec, rng)
    voxel_mm3 = float(np.prod(brain.spacing))
    sphere_mm3 = 4 / 3 * np.pi * 8.0**3
    # random axis ratios 0.8-1.2 and 6.5 mm slices: the volume is within a factor of two of the sphere
    assert 0.4 * sphere_mm3 < mask.sum() * voxel_mm3 < 2.0 * sphere_mm3
    difference = image.array[0] - brain.array[0]
    assert np.all(difference[~mask] < difference[mask].mean())  # the change is where the mask says
    body = brain.array[0] > np.percentile(brain.array[0], 20)
    assert difference[mask].mean() == pytest.approx(3.0 * brain.array[0][body].std(), rel=0.35)
    assert image.tags["hybrid"] is True and image.spacing == brain.spacing


def test_same_seed_same_lesion_and_irregular_shapes_differ(brain):
    spec = LesionSpec(radius_mm=6.0)
    a = insert_lesion(brain, spec, np.random.default_rng(1))[1]
    b = insert_lesion(brain, spec, np.random.default_rng(1))[1]
    c = insert_lesion(brain, spec, np.random.default_rng(2))[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_2d_background_and_bad_specs(br35h_root):
    from medlearn.io import load, to_grey

    slice_2d = to_grey(load(sorted((br35h_root / "no").glob("*.jpg"))[0]))
    image, mask = insert_lesion(slice_2d, LesionSpec(radius_mm=10, contrast=-2.0), np.random.default_rng(0))
    assert mask.shape == slice_2d.spatial_shape and mask.any()
    assert (image.array[0] - slice_2d.array[0].astype(np.float32))[mask].mean() < 0  # darker lesion
    with pytest.raises(MedlearnError):
        LesionSpec(radius_mm=-1)
    with pytest.raises(MedlearnError, match="no room"):
        insert_lesion(slice_2d, LesionSpec(radius_mm=500), np.random.default_rng(0))
