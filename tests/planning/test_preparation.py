"""Images and label maps brought onto a plan's grid (reoriented, resampled) stay where planned_affine says:
a voxel of a real MR volume stored in non-canonical orientations lands where map_voxels puts it, and instance
ids survive resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.geometry import image_from_affine, orientation_code
from medlearn.io.image import MedicalImage
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import map_voxels, planned_affine, prepare_image, prepare_label_map

#: Coarser in plane (ratios 1.54 and 1.28), finer across slices (0.62): resampling both ways.
TARGET_SPACING = [1.2, 1.0, 4.0]


def _plan(spacing=TARGET_SPACING, canonical: bool = True) -> SegmentationPlan:
    return SegmentationPlan(
        spatial_dims=len(spacing),
        target_spacing=list(spacing),
        patch_size=[32] * len(spacing),
        batch_size=2,
        depth=3,
        normalization="zscore",
        labels=[0, 1],
        canonical=canonical,
    )


def _permuted(image: MedicalImage, axes: tuple[int, int, int]) -> MedicalImage:
    """The same volume stored with its array axes permuted (the affine's columns permuted alike)."""
    affine = np.array(image.affine)
    affine[:3, :3] = affine[:3, list(axes)]
    return image_from_affine(np.ascontiguousarray(image.array.transpose(0, *(a + 1 for a in axes))), affine)


@pytest.fixture(scope="module")
def brain(shared_data: Path) -> MedicalImage:
    return load(shared_data / "pyradiomics" / "brain1_image.nrrd")


@pytest.fixture(scope="module", params=[(0, 1, 2), (2, 0, 1)], ids=["LAS", "permuted"])
def stored(request, brain) -> tuple[MedicalImage, tuple[int, int, int]]:
    """The real volume as stored (LAS: x flipped) and with its axes permuted too (slices first), with the
    permutation: array axis k of the copy is axis ``axes[k]`` of the file."""
    axes = request.param
    image = _permuted(brain, axes)
    assert orientation_code(image.affine) != "RAS"
    return image, axes


@pytest.mark.parametrize("index", [(60, 170, 7), (200, 31, 19)])
def test_a_bright_voxel_lands_where_map_voxels_says(stored, index):
    """The prepared image's brightest voxel is within one voxel of map_voxels(index) on the planned grid, and
    mapping back gives the original index."""
    plan = _plan()
    stored, axes = stored
    array = stored.array.astype(np.float32)  # copy: the fixture is shared
    index = tuple(index[a] for a in axes)  # the same anatomical voxel in this storage order
    array[(0, *index)] = array.max() * 50
    image = image_from_affine(array, stored.affine, source=stored.source)
    prepared = prepare_image(image, plan)
    affine = planned_affine(image, plan)
    assert orientation_code(affine) == "RAS"
    np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), TARGET_SPACING, rtol=0.02)
    expected = map_voxels(np.array([index], float), image.affine, affine)[0]
    brightest = np.unravel_index(np.argmax(prepared[0]), prepared.shape[1:])
    assert np.all(np.abs(np.asarray(brightest) - expected) <= 1.0), (brightest, expected)
    assert np.all((expected > -0.5) & (expected < np.asarray(prepared.shape[1:]) - 0.5))
    np.testing.assert_allclose(map_voxels(expected[None], affine, image.affine)[0], index, atol=1e-9)
    # the world position of the point is the same under both grids
    world = image.affine @ np.array([*index, 1.0])
    np.testing.assert_allclose(affine @ np.array([*expected, 1.0]), world, atol=1e-9)


def test_map_voxels_on_2d_grids_uses_the_first_two_axes():
    source = np.diag([0.5, 2.0, 1.0, 1.0])
    source[:2, 3] = [10.0, -4.0]
    target = np.diag([1.0, 1.0, 1.0, 1.0])
    mapped = map_voxels(np.array([[4.0, 3.0], [0.0, 0.0]]), source, target)
    np.testing.assert_allclose(mapped, [[12.0, 2.0], [10.0, -4.0]])
    assert map_voxels(np.zeros((0, 2)), source, target).shape == (0, 2)


def test_prepare_label_map_keeps_instance_ids_on_the_prepared_grid(stored):
    """Nearest-neighbour: no new values, every instance kept, each where map_voxels puts its centre, and the
    prepared image's shape."""
    plan = _plan()
    stored, axes = stored
    instances = np.zeros(stored.spatial_shape, np.uint16)
    ids = {1: (40, 60, 5), 2: (45, 60, 5), 7: (150, 200, 12), 300: (220, 30, 20)}  # 1 and 2 touch
    for value, corner in ids.items():
        low = np.array([corner[a] for a in axes])
        high = low + np.array([(5, 6, 3)[a] for a in axes])
        instances[tuple(slice(a, b) for a, b in zip(low, high, strict=True))] = value
    prepared_image = prepare_image(stored, plan)
    labels = prepare_label_map(instances, stored, plan)
    assert labels.shape == prepared_image.shape[1:]
    assert labels.dtype == instances.dtype
    assert set(np.unique(labels)) == {0, *ids}
    affine = planned_affine(stored, plan)
    for value in ids:
        before = np.argwhere(instances == value).mean(axis=0)
        after = np.argwhere(labels == value).mean(axis=0)
        np.testing.assert_allclose(after, map_voxels(before[None], stored.affine, affine)[0], atol=1.0)


def test_prepare_label_map_keeps_a_real_mask_binary(shared_data, brain):
    mask = load(shared_data / "pyradiomics" / "brain1_label.nrrd").array[0]
    labels = prepare_label_map(mask, brain, _plan())
    assert labels.shape == prepare_image(brain, _plan()).shape[1:]
    assert set(np.unique(labels)) == {0, 1}
    volume = mask.sum() * np.prod(brain.spacing)
    np.testing.assert_allclose(labels.sum() * np.prod(TARGET_SPACING), volume, rtol=0.15)


def test_prepare_label_map_refuses_a_map_of_another_shape(brain):
    with pytest.raises(MedlearnError, match="label map of shape"):
        prepare_label_map(np.zeros((256, 256, 24), np.uint8), brain, _plan())


def test_without_canonical_the_grid_keeps_the_stored_orientation(brain):
    """Plans made before medlearn reoriented use the stored axes: only the spacing changes."""
    plan = _plan(canonical=False)
    affine = planned_affine(brain, plan)
    assert orientation_code(affine) == orientation_code(brain.affine) == "LAS"
    np.testing.assert_allclose(affine[:3, 3], brain.affine[:3, 3])
    np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), TARGET_SPACING, rtol=0.02)
