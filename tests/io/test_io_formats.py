"""NIfTI, NRRD and raster reading on real data, ``save`` round trips and grey conversion."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import tifffile
from PIL import Image
from pydicom.data import get_testdata_file

from medlearn.errors import MedlearnError
from medlearn.io import describe, load, save, to_grey
from medlearn.io.geometry import image_from_affine

BRAIN1 = "pyradiomics/brain1_image.nrrd"
MNI_T1 = "mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def _oblique_affine() -> np.ndarray:
    """A rotated, anisotropic RAS affine so a round trip cannot pass by accident."""
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 0.9, 2.5])
    affine[:3, 3] = [-12.5, 30.0, 7.25]
    return affine


def test_nrrd_brain1_geometry_from_lps_space(shared_data: Path) -> None:
    header = nrrd.read_header(str(shared_data / BRAIN1))
    image = load(shared_data / BRAIN1)
    assert image.format == "NRRD" and image.modality == "OT"
    assert image.array.shape == (1, 256, 256, 25)
    assert image.spacing == pytest.approx((0.78125, 0.78125, 6.5))
    flip = np.array([-1.0, -1.0, 1.0])  # left-posterior-superior -> RAS
    np.testing.assert_allclose(image.affine[:3, :3], (header["space directions"] * flip).T)
    np.testing.assert_allclose(image.affine[:3, 3], header["space origin"] * flip)
    assert describe(image)["orientation"] == "LAS"


def test_nifti_mni152_uses_nibabel_affine(shared_data: Path) -> None:
    reference = nib.load(shared_data / MNI_T1)
    image = load(shared_data / MNI_T1, modality="mr")
    assert image.array.shape == (1, *reference.shape)
    np.testing.assert_allclose(image.affine, reference.affine)
    assert image.spacing == pytest.approx(reference.header.get_zooms()[:3])
    assert image.modality == "MR" and describe(image)["orientation"] == "RAS"
    np.testing.assert_array_equal(image.array[0, ::20, ::20, ::20], np.asanyarray(reference.dataobj)[::20, ::20, ::20])


def test_uint16_tiff_nuclei(shared_data: Path) -> None:
    path = shared_data / "nuclei-dsb2018/img2d.tif"
    image = load(path)
    assert image.format == "TIFF" and image.array.dtype == np.uint16
    np.testing.assert_array_equal(image.array[0], tifffile.imread(path))
    assert image.array.shape == (1, 512, 512) and image.channels == 1


def test_br35h_jpg_is_grey_stored_as_rgb(br35h_root: Path) -> None:
    path = sorted((br35h_root / "yes").glob("*.jpg"))[0]
    image = load(path)
    with Image.open(path) as im:
        width, height = im.size
    assert image.array.shape == (3, height, width) and image.array.dtype == np.uint8
    assert image.tags["rgb_is_grey"] is True and image.format == "JPEG"
    grey = to_grey(image)
    assert grey.array.shape == (1, height, width) and grey.photometric == "MONOCHROME2"
    np.testing.assert_array_equal(grey.array[0], image.array[1])


def test_to_grey_uses_luminance_for_true_colour() -> None:
    image = load(get_testdata_file("SC_rgb_rle.dcm"))
    assert image.tags["rgb_is_grey"] is False
    grey = to_grey(image)
    r, g, b = image.array.astype(np.float64)
    np.testing.assert_allclose(grey.array[0], np.rint(0.299 * r + 0.587 * g + 0.114 * b))
    assert grey.array.dtype == np.uint8 and grey.spacing == image.spacing


def test_png_and_tiff_rgb_and_palette(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    image = load(tmp_path / "rgb.tif")
    np.testing.assert_array_equal(image.array, rgb.transpose(2, 0, 1))
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    palette = load(tmp_path / "palette.png")
    assert palette.array.shape == (3, 20, 30) and palette.tags["converted_from"] == "P"


def test_nifti_round_trip_keeps_oblique_geometry_and_modality(tmp_path: Path) -> None:
    array = np.random.default_rng(1).normal(size=(1, 9, 7, 5)).astype(np.float32)
    image = image_from_affine(array, _oblique_affine(), modality="CT")
    for name in ("vol.nii", "vol.nii.gz"):
        back = load(save(image, tmp_path / name))
        np.testing.assert_array_equal(back.array, array)
        np.testing.assert_allclose(back.affine, image.affine, atol=1e-5)
        assert back.spacing == pytest.approx(image.spacing) and back.modality == "CT"


def test_nifti_round_trip_multichannel(tmp_path: Path) -> None:
    array = np.arange(2 * 4 * 5 * 3, dtype=np.int16).reshape(2, 4, 5, 3)
    back = load(save(image_from_affine(array, _oblique_affine()), tmp_path / "two.nii.gz"))
    np.testing.assert_array_equal(back.array, array)


def test_nifti_round_trip_multichannel_2d_stays_2d(tmp_path: Path) -> None:
    """Co-registered modalities of a 2D image (C, H, W) come back as such, not as a one-slice volume."""
    array = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    back = load(save(image_from_affine(array, np.diag([0.5, 0.7, 1.0, 1.0])), tmp_path / "t1_t2.nii.gz"))
    assert back.array.shape == (2, 4, 5) and back.spacing == pytest.approx((0.5, 0.7))
    np.testing.assert_array_equal(back.array, array)


def test_nrrd_round_trip_and_agreement_with_nifti(shared_data: Path, tmp_path: Path) -> None:
    image = load(shared_data / BRAIN1, modality="MR")
    back = load(save(image, tmp_path / "brain.nrrd"))
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.affine, image.affine)
    assert back.modality == "MR"
    # the same volume through NIfTI lands at the same world coordinates
    via_nifti = load(save(image, tmp_path / "brain.nii.gz"))
    np.testing.assert_allclose(via_nifti.affine, image.affine, atol=1e-5)
    assert nrrd.read_header(str(tmp_path / "brain.nrrd"))["space"] == "left-posterior-superior"


def test_nrrd_round_trip_vector_channels(tmp_path: Path) -> None:
    array = np.random.default_rng(2).integers(0, 255, (3, 6, 5, 4), dtype=np.uint8)
    image = image_from_affine(array, _oblique_affine(), photometric="RGB")
    back = load(save(image, tmp_path / "rgb.nrrd"))
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-9)


@pytest.mark.parametrize(
    ("dtype", "channels"), [(np.uint8, 1), (np.uint16, 1), (np.uint8, 3)], ids=["grey8", "grey16", "rgb8"]
)
def test_png_round_trip(tmp_path: Path, dtype: type, channels: int) -> None:
    top = np.iinfo(dtype).max
    array = np.random.default_rng(3).integers(0, top, (channels, 17, 23), endpoint=True).astype(dtype)
    affine = np.diag([0.5, 0.25, 1.0, 1.0])
    image = image_from_affine(array, affine, modality="DX")
    back = load(save(image, tmp_path / "img.png"))
    assert back.array.dtype == dtype
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.affine, affine)
    assert back.spacing == pytest.approx((0.5, 0.25)) and back.modality == "DX"


def test_save_refuses_what_png_cannot_hold_and_leaves_nothing(tmp_path: Path) -> None:
    volume = image_from_affine(np.zeros((1, 4, 4, 4), np.uint8), np.eye(4))
    floats = image_from_affine(np.full((1, 4, 4), 0.5, np.float32), np.eye(4))
    for image in (volume, floats):
        with pytest.raises(MedlearnError, match="out.png"):
            save(image, tmp_path / "out.png")
    with pytest.raises(MedlearnError, match="cannot save"):
        save(floats, tmp_path / "out.jpg")
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic_over_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "img.png"
    good = image_from_affine(np.ones((1, 4, 4), np.uint8), np.eye(4))
    save(good, target)
    with pytest.raises(MedlearnError):
        save(image_from_affine(np.full((1, 4, 4), -1, np.int32), np.eye(4)), target)
    np.testing.assert_array_equal(load(target).array, good.array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png"]
