"""Intensity normalisation by modality and resampling geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medlearn.errors import MedlearnError
from medlearn.io import load, normalize_intensity, resample_to_spacing
from medlearn.io.geometry import image_from_affine
from medlearn.io.intensity import (
    CT_WINDOWS,
    apply_normalization,
    background_values,
    ct_window,
    display_scale,
    mr_normalize,
)


@pytest.mark.parametrize("preset", sorted(CT_WINDOWS))
def test_ct_window_presets_map_the_window_to_unit_range(preset: str) -> None:
    center, width = CT_WINDOWS[preset]
    hu = np.array([center - width, center - width / 2, center, center + width / 4, center + width])
    expected = np.clip((hu - (center - width / 2)) / width, 0, 1)
    np.testing.assert_allclose(ct_window(hu, preset), expected, atol=1e-6)


def test_custom_window_and_bad_window() -> None:
    np.testing.assert_allclose(ct_window(np.array([-100.0, 0.0, 100.0]), (0, 200)), [0.0, 0.5, 1.0])
    with pytest.raises(MedlearnError, match="unknown CT window"):
        ct_window(np.zeros(3), "elbow")
    with pytest.raises(MedlearnError, match="width"):
        ct_window(np.zeros(3), (0, 0))


def test_real_ct_brain_window_saturates_air_and_bone() -> None:
    image = load(get_testdata_file("CT_small.dcm"))
    out = normalize_intensity(image, window="brain")
    assert out.array.dtype == np.float32 and out.array.min() >= 0.0 and out.array.max() <= 1.0
    air, dense = image.array < -800, image.array > 200
    assert air.any() and dense.any()
    assert np.all(out.array[air] == 0.0) and np.all(out.array[dense] == 1.0)
    assert out.tags["normalization"] == {"modality": "CT", "window": "brain"}
    assert out.affine is image.affine


def test_dispatcher_defaults_ct_to_the_abdomen_window() -> None:
    image = load(get_testdata_file("CT_small.dcm"))
    np.testing.assert_allclose(normalize_intensity(image).array, ct_window(image.array, "abdomen"))


def test_mr_percentile_clip_then_zscore() -> None:
    image = load(get_testdata_file("MR_small.dcm"))
    array = image.array.astype(np.float32)
    array[0, 0, 0] = 1e6  # a hot pixel must not dominate
    out = normalize_intensity(array, "MR")
    assert isinstance(out, np.ndarray)
    assert out.mean() == pytest.approx(0.0, abs=1e-4) and out.std() == pytest.approx(1.0, abs=1e-3)
    high = np.percentile(array, 99.5)
    assert out.max() == pytest.approx(
        (high - np.clip(array, None, high).mean()) / np.clip(array, None, high).std(), rel=1e-3
    )


def test_mr_zscore_over_a_mask_zeroes_the_background() -> None:
    rng = np.random.default_rng(0)
    array = rng.normal(300, 50, (1, 32, 32)).astype(np.float32)
    mask = np.zeros((1, 32, 32), bool)
    mask[:, 8:24, 8:24] = True
    array[~mask] = 0
    for out in (mr_normalize(array, mask=mask), mr_normalize(array, nonzero=True)):
        assert np.all(out[~mask] == 0)
        assert out[mask].mean() == pytest.approx(0, abs=1e-4) and out[mask].std() == pytest.approx(1, abs=1e-3)


def test_display_scaling_is_16_bit_aware(shared_data: Path) -> None:
    image = load(shared_data / "nuclei-dsb2018/img2d.tif")
    scaled = normalize_intensity(image)  # OT: percentile scaling
    assert scaled.array.min() == 0.0 and scaled.array.max() == 1.0
    by_dtype = display_scale(image.array, method="dtype")
    np.testing.assert_allclose(by_dtype, image.array / 65535.0, rtol=1e-6)
    twelve_bit = np.array([0, 2048, 4095, 5000], dtype=np.uint16)
    np.testing.assert_allclose(display_scale(twelve_bit, "dtype", bits_stored=12), [0, 2048 / 4095, 1, 1])
    minmax = display_scale(np.array([10, 20, 30], np.uint16), "minmax")
    np.testing.assert_allclose(minmax, [0, 0.5, 1])
    assert np.all(display_scale(np.full(5, 7, np.uint8)) == 0)  # constant image, no division by zero


def test_dispatcher_scales_ultrasound_rgb_to_unit_range() -> None:
    image = load(get_testdata_file("SC_rgb_rle.dcm"), modality="US")
    out = normalize_intensity(image, method="minmax")
    assert out.array.shape == image.array.shape and out.array.min() == 0 and out.array.max() == 1


# --- resampling ---------------------------------------------------------------------------------


def _ramp_image() -> object:
    """Values equal to the world x coordinate (mm) of each voxel, on an anisotropic grid."""
    affine = np.diag([2.0, 1.0, 3.0, 1.0])
    affine[:3, 3] = [-10.0, 5.0, 0.0]
    i = np.arange(16, dtype=np.float32)
    array = np.broadcast_to((-10.0 + 2.0 * i)[:, None, None], (16, 10, 6))[None].copy()
    return image_from_affine(array, affine, modality="MR")


def test_resample_updates_spacing_affine_and_values_consistently() -> None:
    image = _ramp_image()
    out = resample_to_spacing(image, (1.0, None, 1.5))
    assert out.spacing == pytest.approx((1.0, 1.0, 1.5))
    assert out.spatial_shape == (32, 10, 12)
    np.testing.assert_allclose(out.affine[:3, 3], image.affine[:3, 3])  # first voxel stays put
    # every output voxel holds the world x of its own centre, as computed from the new affine
    world_x = out.affine[0, 0] * np.arange(32) + out.affine[0, 3]
    inside = world_x <= image.affine[0, 3] + 2.0 * 15
    np.testing.assert_allclose(out.array[0, inside, 3, 4], world_x[inside], atol=1e-4)
    assert out.modality == "MR" and out.array.dtype == np.float32


def test_resample_mask_with_nearest_keeps_labels(shared_data: Path) -> None:
    mask = load(shared_data / "pyradiomics/brain1_label.nrrd")
    out = resample_to_spacing(mask, 2.0, order=0)
    assert out.array.dtype == mask.array.dtype
    assert set(np.unique(out.array)) <= set(np.unique(mask.array))
    assert out.spatial_shape == tuple(round(n * s / 2.0) for n, s in zip(mask.spatial_shape, mask.spacing, strict=True))
    # the lesion keeps its physical volume within a voxel-rounding tolerance
    before = (mask.array > 0).sum() * np.prod(mask.spacing)
    after = (out.array > 0).sum() * 8.0
    assert after == pytest.approx(before, rel=0.25)
    np.testing.assert_allclose(out.affine[:3, :3], mask.affine[:3, :3] / np.array(mask.spacing) * 2.0)


def test_background_values_are_what_the_darkest_intensity_becomes() -> None:
    params = {"clip_low": [10.0, -5.0], "clip_high": [200.0, 50.0], "mean": [60.0, 5.0], "std": [25.0, 10.0]}
    image = np.stack([np.full((3, 3), 0.0), np.full((3, 3), -100.0)]).astype(np.float32)  # below both clips
    normalised = apply_normalization(image, "dataset", params)
    assert background_values("dataset", params, 2) == pytest.approx(tuple(normalised[:, 0, 0]))
    assert background_values("zscore", {"nonzero": True}, 3) == (0.0, 0.0, 0.0)  # background stays 0
    assert background_values("zscore", {}, 1) is None  # each image's own minimum
