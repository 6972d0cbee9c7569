"""DICOM SEG export: segments, per-frame references to the right source slice, pixels, and clear errors."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.dicom_seg import write_dicom_seg

ROWS, COLS = 128, 96  # not square, so a swapped rows/columns transpose cannot pass


def _ct_small() -> str:
    path = get_testdata_file("CT_small.dcm")  # bundled with pydicom, never downloaded
    if path is None:
        pytest.skip("pydicom test file CT_small.dcm not installed")
    return str(path)


def _source_uid(frame_item: pydicom.Dataset) -> str:
    derivation = frame_item.DerivationImageSequence[0]
    return str(derivation.SourceImageSequence[0].ReferencedSOPInstanceUID)


def test_series_seg_references_the_right_slice_for_every_frame(tmp_path: Path, make_ct_series) -> None:
    uids = make_ct_series(tmp_path / "ct")
    image = load(tmp_path / "ct")
    assert image.spatial_shape == (COLS, ROWS, 5)
    # which loaded slice k holds which created slice i (via the +100*i offset)
    base = pydicom.dcmread(_ct_small())
    hu = base.pixel_array[:ROWS, :COLS].astype(np.float32) * float(base.RescaleSlope) + float(base.RescaleIntercept)
    created = {k: int(round(float((image.array[0, :, :, k].T - hu).mean()) / 100)) for k in range(5)}
    assert sorted(created.values()) == list(range(5)) and created != {k: k for k in range(5)}

    mask = np.zeros(image.spatial_shape, dtype=np.int16)
    mask[10:30, 40:90, 1:4] = 1  # columns 10-29, rows 40-89, slices 1-3
    mask[60:80, 5:15, 3] = 7
    out = write_dicom_seg(mask, tmp_path / "ct", tmp_path / "out" / "seg.dcm", labels={1: "liver", 7: "lesion"})
    assert out == tmp_path / "out" / "seg.dcm"
    assert [p.name for p in out.parent.iterdir()] == ["seg.dcm"]  # no temporary left behind

    seg = hd.seg.segread(out)
    assert seg.SegmentationType == "BINARY" and seg.Modality == "SEG"
    assert seg.SeriesDescription == "medlearn segmentation"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "lesion"]
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "medlearn"
    assert str(seg.FrameOfReferenceUID) == str(base.FrameOfReferenceUID)
    assert seg.SeriesInstanceUID not in {str(base.SeriesInstanceUID)}

    # each stored frame: its segment, the source slice it references, and its pixels
    numbers = {1: 1, 2: 7}
    seen = set()
    for item, frame in zip(seg.PerFrameFunctionalGroupsSequence, seg.pixel_array.reshape(-1, ROWS, COLS), strict=True):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        created_slice = uids[_source_uid(item)]
        k = next(k for k, i in created.items() if i == created_slice)  # loaded slice holding that source
        np.testing.assert_array_equal(frame, (mask[:, :, k] == numbers[number]).T)
        seen.add((number, k))
    assert seen == {(1, 1), (1, 2), (1, 3), (2, 3)}  # empty frames omitted, nothing else missing


def test_single_file_2d_source_with_channel_axis_and_default_names(tmp_path: Path) -> None:
    image = load(_ct_small())
    mask = np.zeros((1, *image.spatial_shape), dtype=np.uint8)
    mask[0, 20:40, 50:70] = 3
    out = write_dicom_seg(mask, _ct_small(), tmp_path / "seg.dcm", algorithm="unet", algorithm_version="2")
    seg = hd.seg.segread(out)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["label 3"]
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "unet" and algorithm.AlgorithmVersion == "2"
    assert _source_uid(seg.PerFrameFunctionalGroupsSequence[0]) == str(pydicom.dcmread(_ct_small()).SOPInstanceUID)
    np.testing.assert_array_equal(seg.pixel_array.reshape(image.spatial_shape), mask[0] == 3)


def test_labels_listed_but_absent_become_segments(tmp_path: Path) -> None:
    mask = np.zeros(load(_ct_small()).spatial_shape, dtype=np.int64)
    mask[5:9, 5:9] = 2
    seg = hd.seg.segread(write_dicom_seg(mask, _ct_small(), tmp_path / "s.dcm", labels={1: "a", 2: "b"}))
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["a", "b"]


def test_non_dicom_source_is_refused(tmp_path: Path) -> None:
    nifti = tmp_path / "image.nii.gz"
    nifti.write_bytes(b"not really")
    with pytest.raises(MedlearnError, match="needs a DICOM source") as error:
        write_dicom_seg(np.ones((2, 2), np.uint8), nifti, tmp_path / "seg.dcm")
    assert error.value.path == str(nifti)
    assert not (tmp_path / "seg.dcm").exists()


def test_mask_shape_mismatch_names_both_shapes(tmp_path: Path, make_ct_series) -> None:
    make_ct_series(tmp_path / "ct")
    with pytest.raises(MedlearnError, match=r"mask shape \(96, 128, 4\) .* spatial shape \(96, 128, 5\)"):
        write_dicom_seg(np.ones((COLS, ROWS, 4), np.uint8), tmp_path / "ct", tmp_path / "seg.dcm")
    with pytest.raises(MedlearnError, match=r"mask shape \(128, 96, 5\)"):  # rows/cols swapped
        write_dicom_seg(np.ones((ROWS, COLS, 5), np.uint8), tmp_path / "ct", tmp_path / "seg.dcm")


@pytest.mark.parametrize(
    ("mask", "labels", "problem"),
    [
        (np.full((128, 128), 0.5), None, "must be integers"),
        (np.full((128, 128), -1), None, "must not be negative"),
        (np.zeros((128, 128), np.uint8), None, "mask is empty"),
        (np.ones((128, 128), np.uint8), {0: "background"}, "positive integers"),
        (np.full((128, 128), "a"), None, "integer labels"),
    ],
)
def test_bad_labels_are_refused(tmp_path: Path, mask: np.ndarray, labels: dict | None, problem: str) -> None:
    with pytest.raises(MedlearnError, match=problem) as error:
        write_dicom_seg(mask, _ct_small(), tmp_path / "seg.dcm", labels=labels)
    assert error.value.path == str(tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


def test_multiframe_source_frames_are_mapped_back_to_file_order(tmp_path: Path, make_ct_series) -> None:
    """An enhanced multi-frame CT whose frames run opposite to the loader's slice order."""
    make_ct_series(tmp_path / "ct")
    slices = [pydicom.dcmread(p) for p in sorted((tmp_path / "ct").iterdir())]
    hd.legacy.LegacyConvertedEnhancedCTImage(
        slices, series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(), instance_number=1
    ).save_as(tmp_path / "mf.dcm")
    image = load(tmp_path / "mf.dcm")
    assert image.spatial_shape == (COLS, ROWS, 5)
    frame_z = [
        float(item.PlanePositionSequence[0].ImagePositionPatient[2])
        for item in pydicom.dcmread(tmp_path / "mf.dcm").PerFrameFunctionalGroupsSequence
    ]
    assert frame_z != sorted(frame_z)  # file order is not the loader's order

    mask = np.zeros(image.spatial_shape, np.uint8)
    mask[10:30, 40:90, 1] = 1
    mask[60:80, 5:15, 3] = 2
    seg = hd.seg.segread(write_dicom_seg(mask, tmp_path / "mf.dcm", tmp_path / "seg.dcm"))
    for item, frame in zip(seg.PerFrameFunctionalGroupsSequence, seg.pixel_array.reshape(-1, ROWS, COLS), strict=True):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source_frame = int(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
        k = 1 if number == 1 else 3
        assert frame_z[source_frame - 1] == pytest.approx(float((image.affine @ [0, 0, k, 1])[2]))
        np.testing.assert_array_equal(frame, (mask[:, :, k] == number).T)
    assert seg.NumberOfFrames == 2


def test_empty_mask_with_named_labels_gives_an_empty_segment(tmp_path: Path) -> None:
    mask = np.zeros(load(_ct_small()).spatial_shape, dtype=np.uint8)
    seg = hd.seg.segread(write_dicom_seg(mask, _ct_small(), tmp_path / "s.dcm", labels={1: "tumour"}))
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["tumour"]
    assert not seg.pixel_array.any()
