"""Robustness shifts: the spec language, intensity changes as specified, resampling with correct geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlearn.errors import MedlearnError
from medlearn.evaluation.shifts import KINDS, intensity_range, parse_shift
from medlearn.io import load
from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage


@pytest.fixture(scope="module")
def nuclei(shared_data: Path) -> tuple[MedicalImage, MedicalImage]:
    folder = shared_data / "nuclei-dsb2018"
    return load(folder / "img2d.tif"), load(folder / "mask2d.tif")


def _world(affine: np.ndarray, index) -> np.ndarray:
    padded = np.zeros(4)
    padded[: len(index)] = index
    padded[3] = 1.0
    return (affine @ padded)[:3]


def test_parse_and_canonical_text() -> None:
    shift = parse_shift(" Scale:1.30 , noise:0.02,resolution:2")
    assert [(s.kind, s.value) for s in shift.steps] == [("scale", 1.3), ("noise", 0.02), ("resolution", 2.0)]
    assert shift.text == "scale:1.3,noise:0.02,resolution:2"
    assert parse_shift(shift.text) == shift
    assert shift.changes_grid and not parse_shift("offset:-0.1").changes_grid
    assert parse_shift("none").text == "none" and parse_shift("none").steps == ()


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("", "empty"),
        ("blur:2", "unknown shift kind 'blur'"),
        ("scale", "needs a value"),
        ("scale:", "needs a value"),
        ("scale:abc", "not a number"),
        ("scale:0", "invalid"),
        ("scale:nan", "invalid"),
        ("noise:-0.1", "invalid"),
        ("resolution:-2", "invalid"),
        ("scale:1.3,,noise:0.1", "empty step"),
    ],
)
def test_bad_specs_name_the_valid_kinds(spec: str, problem: str) -> None:
    with pytest.raises(MedlearnError, match=problem) as caught:
        parse_shift(spec)
    assert all(kind in str(caught.value) for kind in KINDS)


def test_scale_offset_and_noise_change_intensities_as_specified(nuclei) -> None:
    image, mask = nuclei
    original = image.array.astype(np.float64)
    spread = float(np.percentile(original, 99) - np.percentile(original, 1))
    assert intensity_range(image).ravel()[0] == pytest.approx(spread)

    scaled, same_mask = parse_shift("scale:1.3").apply(image, mask)
    np.testing.assert_allclose(scaled.array, original * 1.3, rtol=1e-6)
    assert same_mask is mask and scaled.array.shape == image.array.shape
    assert scaled.tags["shift"] == "scale:1.3" and scaled.spacing == image.spacing

    offset, _ = parse_shift("offset:0.1").apply(image, mask)
    np.testing.assert_allclose(offset.array - original, 0.1 * spread, rtol=1e-5)

    noisy, _ = parse_shift("noise:0.05").apply(image, mask)
    difference = noisy.array - original
    assert abs(difference.mean()) < 0.01 * spread
    assert difference.std() == pytest.approx(0.05 * spread, rel=0.02)
    again, _ = parse_shift("noise:0.05").apply(image, mask)
    np.testing.assert_array_equal(again.array, noisy.array)  # fixed seed: deterministic
    other, _ = parse_shift("noise:0.05", seed=1).apply(image, mask)
    assert not np.array_equal(other.array, noisy.array)

    combined, _ = parse_shift("scale:2,offset:0.1").apply(image, mask)  # in order, relative to the unshifted range
    np.testing.assert_allclose(combined.array, original * 2 + 0.1 * spread, rtol=1e-5)
    np.testing.assert_array_equal(image.array, load(image.source).array)  # the input is left untouched


def test_none_is_the_identity(nuclei) -> None:
    image, mask = nuclei
    assert parse_shift("none").apply(image, mask) == (image, mask)


def test_resolution_keeps_extent_and_world_positions(nuclei) -> None:
    image, mask = nuclei
    coarse, coarse_mask = parse_shift("resolution:2").apply(image, mask)
    assert coarse.spacing == (2.0, 2.0) and coarse.spatial_shape == (256, 256)
    assert coarse_mask.spatial_shape == coarse.spatial_shape
    np.testing.assert_array_equal(coarse_mask.affine, coarse.affine)
    for index in [(0, 0), (10, 37), (255, 255)]:
        np.testing.assert_allclose(_world(coarse.affine, index), _world(image.affine, 2 * np.array(index)), atol=1e-9)
    extent = np.array(image.spatial_shape) * np.array(image.spacing)
    np.testing.assert_allclose(np.array(coarse.spatial_shape) * np.array(coarse.spacing), extent)
    # the mask is resampled by nearest neighbour: only original labels, and voxel i takes the label at 2i
    assert set(np.unique(coarse_mask.array)) <= set(np.unique(mask.array))
    np.testing.assert_array_equal(coarse_mask.array[0], mask.array[0, ::2, ::2])
    assert coarse.tags["shift"] == "resolution:2" and coarse_mask.tags["shift"] == "resolution:2"


def test_resolution_on_an_oblique_anisotropic_volume() -> None:
    """A rotated 3D volume with 0.8 x 0.8 x 3 mm voxels: every axis twice as coarse, world positions kept."""
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 0.8, 3.0])
    affine[:3, 3] = (-40.0, 12.5, 7.0)
    rng = np.random.default_rng(0)
    image = image_from_affine(rng.random((1, 40, 30, 10)).astype(np.float32), affine)
    labels = np.zeros((1, 40, 30, 10), dtype=np.uint8)
    labels[0, 10:30, 5:25, 2:8] = 4
    mask = image_from_affine(labels, affine)
    coarse, coarse_mask = parse_shift("resolution:2").apply(image, mask)
    assert coarse.spatial_shape == coarse_mask.spatial_shape == (20, 15, 5)
    np.testing.assert_allclose(coarse.spacing, (1.6, 1.6, 6.0))
    np.testing.assert_allclose(coarse.direction, image.direction, atol=1e-12)
    np.testing.assert_allclose(_world(coarse.affine, (7, 3, 2)), _world(affine, (14, 6, 4)), atol=1e-9)
    assert coarse_mask.array.dtype == np.uint8 and set(np.unique(coarse_mask.array)) == {0, 4}


def test_resolution_anti_aliases() -> None:
    """Stripes of period 2 voxels vanish (to their mean) instead of aliasing to all-0 or all-1."""
    stripes = np.zeros((1, 64, 64), dtype=np.float32)
    stripes[0, ::2] = 1.0
    coarse, _ = parse_shift("resolution:2").apply(image_from_affine(stripes, np.eye(4)))
    assert coarse.array.std() < 0.1 and coarse.array.mean() == pytest.approx(0.5, abs=0.1)


def test_mask_of_another_shape_is_refused(nuclei) -> None:
    image, mask = nuclei
    small = image_from_affine(mask.array[:, :100], mask.affine)
    with pytest.raises(MedlearnError, match="mask of spatial shape"):
        parse_shift("scale:2").apply(image, small)
