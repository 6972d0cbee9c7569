"""DICOM reading on real pydicom test files and on series folders built from them."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medlearn.errors import ImageReadError
from medlearn.io import describe, load


def _testfile(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} not installed")
    return str(path)


def _stored(name: str) -> np.ndarray:
    return pydicom.dcmread(_testfile(name)).pixel_array


def test_ct_small_is_in_hounsfield_units_with_ras_geometry() -> None:
    ds = pydicom.dcmread(_testfile("CT_small.dcm"))
    image = load(_testfile("CT_small.dcm"))
    assert image.modality == "CT" and image.format == "DICOM"
    assert image.array.shape == (1, 128, 128) and image.array.dtype == np.float32
    expected = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(image.array[0], expected)
    assert image.rescale == (float(ds.RescaleSlope), float(ds.RescaleIntercept))
    assert -1100 < image.array.min() < -500 and image.array.max() > 500  # air and bone in HU
    assert image.spacing == pytest.approx([float(v) for v in ds.PixelSpacing])
    # LPS position of the first pixel, converted to RAS: x and y change sign
    lps = np.array([float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(image.affine[:3, 3], lps * [-1, -1, 1])
    # rows run along +y (posterior in LPS), i.e. -y in RAS
    np.testing.assert_allclose(image.affine[:3, 0], [0, -float(ds.PixelSpacing[0]), 0], atol=1e-9)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("SC_rgb_rle.dcm", "SC_rgb.dcm"),
        ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
    ],
)
def test_lossless_transfer_syntaxes_decode_to_the_same_pixels(name: str, reference: str) -> None:
    image, ref = load(_testfile(name)), load(_testfile(reference))
    assert image.array.dtype.isnative
    np.testing.assert_array_equal(image.array, ref.array)
    assert image.spacing == ref.spacing


def test_mr_small_keeps_stored_values_and_spacing() -> None:
    image = load(_testfile("MR_small.dcm"))
    assert image.modality == "MR" and image.array.shape == (1, 64, 64)
    np.testing.assert_array_equal(image.array[0], _stored("MR_small.dcm"))
    assert image.spacing == pytest.approx((0.3125, 0.3125))


def test_jpeg_baseline_colour_is_converted_to_rgb() -> None:
    image = load(_testfile("SC_rgb_jpeg_dcmtk.dcm"))
    ref = load(_testfile("SC_rgb.dcm"))
    assert image.photometric == "RGB" and image.array.shape == (3, 100, 100)
    assert image.tags["rgb_is_grey"] is False
    # lossy, but close to the uncompressed original (a YBR array would be far off)
    assert np.abs(image.array.astype(int) - ref.array.astype(int)).mean() < 2


def test_jpeg2000_file() -> None:
    ds = pydicom.dcmread(_testfile("JPEG2000.dcm"))
    image = load(_testfile("JPEG2000.dcm"))
    assert image.array.shape == (1, ds.Rows, ds.Columns)
    assert image.spacing == pytest.approx([float(v) for v in ds.PixelSpacing])
    np.testing.assert_array_equal(image.array[0], ds.pixel_array)
    assert describe(image)["dicom"]["TransferSyntax"].startswith("JPEG 2000")


def test_multiframe_frames_become_the_last_spatial_axis() -> None:
    ds = pydicom.dcmread(_testfile("emri_small.dcm"))
    image = load(_testfile("emri_small.dcm"))
    frames = ds.pixel_array  # (frames, rows, cols)
    assert image.array.shape == (1, ds.Columns, ds.Rows, int(ds.NumberOfFrames))
    np.testing.assert_array_equal(image.array[0, :, :, 3], frames[3].T)
    assert image.spacing[2] == pytest.approx(float(ds.SpacingBetweenSlices))


def test_missing_codec_names_the_transfer_syntax() -> None:
    path = _testfile("JPEG-lossy.dcm")  # 12-bit JPEG Extended: no installed plugin decodes it
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    with pytest.raises(ImageReadError) as caught:
        load(path)
    message = str(caught.value)
    assert syntax.name in message and str(syntax) in message and "JPEG-lossy.dcm" in message


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_testfile("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "mono1.dcm")
    image = load(tmp_path / "mono1.dcm")
    stored = ds.pixel_array.astype(np.int32)
    assert image.photometric == "MONOCHROME2"
    np.testing.assert_array_equal(image.array[0].astype(np.int32), -stored - 1)  # signed inversion
    assert np.argmax(image.array[0]) == np.argmin(stored)


def test_real_monochrome1_radiograph_is_inverted() -> None:
    path = _testfile("RG1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = load(path)
    np.testing.assert_array_equal(image.array[0], (2**ds.BitsStored - 1) - ds.pixel_array)
    assert image.modality == "CR" and image.photometric == "MONOCHROME2"


# --- series folders -----------------------------------------------------------------------------


def _write_series(
    folder: Path, count: int, step: float, uid: str, description: str, offset: int = 0, drift_y: float = 0.0
) -> list:
    """Slices of CT_small shifted along z by ``step``, each with its own constant added to the
    stored values, written under shuffled file names and InstanceNumbers."""
    folder.mkdir(parents=True, exist_ok=True)
    source = pydicom.dcmread(_testfile("CT_small.dcm"))
    base = np.array([float(v) for v in source.ImagePositionPatient])
    numbers = list(range(count))
    random.Random(uid).shuffle(numbers)
    for i in range(count):
        ds = pydicom.dcmread(_testfile("CT_small.dcm"))
        ds.ImagePositionPatient = [float(base[0]), float(base[1] + i * drift_y), float(base[2] + i * step)]
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = uid
        ds.SeriesDescription = description
        ds.InstanceNumber = numbers[i] + 1
        ds.PixelData = (ds.pixel_array + np.int16(100 * i + offset)).astype(np.int16).tobytes()
        ds.save_as(folder / f"slice_{numbers[i]:03d}.dcm")
    return [float(base[2] + i * step) for i in range(count)]


def test_series_folder_sorted_by_position_with_spacing_from_positions(tmp_path: Path) -> None:
    z = _write_series(tmp_path / "series", count=5, step=2.5, uid=generate_uid(), description="axial")
    (tmp_path / "series" / "notes.txt").write_text("not dicom")
    image = load(tmp_path / "series")
    assert image.array.shape == (1, 128, 128, 5)
    # SliceThickness says 5 mm; the positions say 2.5 mm
    assert image.spacing == pytest.approx((0.661468, 0.661468, 2.5))
    slice_means = image.array[0].mean(axis=(0, 1))
    assert np.all(np.diff(slice_means) == pytest.approx(100.0))  # slice i carries +100*i
    assert image.affine[2, 3] == pytest.approx(min(z)) and image.affine[2, 2] == pytest.approx(2.5)
    assert describe(image)["orientation"] == "LPS"
    assert image.tags["slices"] == 5 and "irregular_slice_spacing" not in image.tags


def test_a_series_missing_a_slice_is_resampled_to_its_regular_step(tmp_path: Path) -> None:
    """Slice 2 of 6 (2.5 mm apart) is missing: the volume keeps 2.5 mm and 6 slices, the missing one interpolated
    between its neighbours, so the affine is true for every slice (a median step over the 5 files would put
    slices 3-5 2.5 mm off and get distances and volumes wrong)."""
    z = _write_series(tmp_path / "series", count=6, step=2.5, uid=generate_uid(), description="axial")
    removed = next(p for p in (tmp_path / "series").glob("*.dcm") if _position(p) == pytest.approx(z[2]))
    removed.unlink()
    image = load(tmp_path / "series")
    assert image.array.shape[-1] == 6 and image.spacing[2] == pytest.approx(2.5)
    means = image.array[0].mean(axis=(0, 1))
    assert np.diff(means) == pytest.approx(100.0, abs=0.5)  # slice i carries +100*i; slice 2 interpolated
    note = image.tags["irregular_slice_spacing"]
    assert note["acquired_slices"] == 5 and note["acquired_gaps_mm"] == [2.5, 5.0]


def _position(path: Path) -> float:
    return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])


def test_descending_positions_still_sort_along_the_normal(tmp_path: Path) -> None:
    z = _write_series(tmp_path / "s", count=4, step=-3.0, uid=generate_uid(), description="down")
    image = load(tmp_path / "s")
    assert image.spacing[2] == pytest.approx(3.0)
    assert image.affine[2, 3] == pytest.approx(min(z))
    slice_means = image.array[0].mean(axis=(0, 1))
    assert np.all(np.diff(slice_means) == pytest.approx(-100.0))  # the lowest slice was written last


def test_folder_with_two_series_lists_them_or_reads_the_chosen_one(tmp_path: Path) -> None:
    first, second = generate_uid(), generate_uid()
    _write_series(tmp_path / "mixed", count=3, step=2.0, uid=first, description="arterial")
    _write_series(tmp_path / "mixed" / "b", count=2, step=2.0, uid=second, description="venous", offset=7)
    with pytest.raises(ImageReadError) as caught:
        load(tmp_path / "mixed")
    message = str(caught.value)
    for text in (first, second, "arterial", "venous", "3 slices", "2 slices", "mixed"):
        assert text in message
    assert load(tmp_path / "mixed", series_uid=first).spatial_shape == (128, 128, 3)
    assert load(tmp_path / "mixed", series_uid=second).spatial_shape == (128, 128, 2)
    with pytest.raises(ImageReadError, match="no series 1.2.3"):
        load(tmp_path / "mixed", series_uid="1.2.3")


def test_folder_without_dicom_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(ImageReadError, match="no DICOM image files"):
        load(tmp_path)


def test_huge_dimensions_in_dicom_header_are_rejected_before_decoding(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_testfile("CT_small.dcm"))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 60000, 60000, 500
    ds.save_as(tmp_path / "huge.dcm")
    with pytest.raises(ImageReadError, match=r"header claims \d+ voxels") as caught:
        load(tmp_path / "huge.dcm")
    assert "huge.dcm" in str(caught.value)


def test_a_tilted_gantry_series_gets_a_sheared_affine_that_places_every_slice_where_it_was(tmp_path: Path) -> None:
    """Each slice 2.5 mm further along z and 1 mm along y (a tilted gantry): a normal step would put the last slice
    4 mm beside where it was acquired; the sheared affine puts each at its ImagePositionPatient."""
    _write_series(tmp_path / "tilted", count=5, step=2.5, uid=generate_uid(), description="tilted", drift_y=1.0)
    image = load(tmp_path / "tilted")
    assert image.tags["gantry_tilt_degrees"] == pytest.approx(np.degrees(np.arctan(1.0 / 2.5)), abs=0.01)
    positions = sorted(
        (
            np.array([float(v) for v in pydicom.dcmread(f).ImagePositionPatient])
            for f in (tmp_path / "tilted").iterdir()
        ),
        key=lambda p: p[2],
    )
    for k, lps in enumerate(positions):
        world = image.affine @ np.array([0.0, 0.0, k, 1.0])
        np.testing.assert_allclose(world[:3], lps * np.array([-1.0, -1.0, 1.0]), atol=1e-4)


def test_an_archive_pointed_at_by_mistake_is_refused_before_reading_its_headers(tmp_path: Path, monkeypatch) -> None:
    import medlearn.io.dicom as dicom_module

    monkeypatch.setattr(dicom_module, "MAX_FOLDER_FILES", 3)
    _write_series(tmp_path / "many", count=5, step=2.5, uid=generate_uid(), description="many")
    with pytest.raises(ImageReadError, match="more than 3 files"):
        load(tmp_path / "many")
