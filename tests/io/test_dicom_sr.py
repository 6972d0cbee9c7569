"""DICOM SR of detected points: one measurement group per candidate, points back in LPS where the RAS input put
them (and on the right source slice), scores and radii, evidence, a report dciodvfy accepts, and the predict wiring."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.sr.codedict import codes
from tests.io.dicom_validation import dciodvfy_lines

from medlearn.errors import MedlearnError
from medlearn.io import load, save
from medlearn.io.dicom_sr import write_detection_sr

LPS = np.array([-1.0, -1.0, 1.0])  # RAS -> LPS: x and y change sign


def _ct_small() -> str:
    path = get_testdata_file("CT_small.dcm")  # bundled with pydicom, never downloaded
    if path is None:
        pytest.skip("pydicom test file CT_small.dcm not installed")
    return str(path)


def _world(image, voxels: np.ndarray) -> np.ndarray:
    """RAS mm of voxel coordinates under the loaded image's affine."""
    voxels = np.asarray(voxels, dtype=float)
    return voxels @ image.affine[:3, : voxels.shape[1]].T + image.affine[:3, 3]


def _dciodvfy_errors(path: Path) -> list[str]:
    """The errors dciodvfy reports for ``path``, after checking it recognised the SR IOD it verified."""
    lines = dciodvfy_lines(path)
    assert any("Comprehensive3DSR" in line for line in lines), lines
    return [line for line in lines if line.startswith("Error")]


def _measurement(group, concept) -> tuple[float, hd.sr.CodedConcept]:
    (item,) = group.get_measurements(name=concept)
    return float(item.value), item.unit


def test_series_sr_holds_each_candidate_at_its_point_with_score_and_radius(tmp_path: Path, make_ct_series) -> None:
    uids = make_ct_series(tmp_path / "ct")
    image = load(tmp_path / "ct")
    assert image.spatial_shape == (96, 128, 5)  # (cols, rows, slices)
    voxels = np.array([[10.0, 20.0, 1.0], [50.5, 100.25, 3.4], [90.0, 5.0, 0.0]])
    world = _world(image, voxels)
    scores, radii = np.array([0.91, 0.55, 0.3125]), np.array([4.0, 2.5, 7.25])

    out = write_detection_sr(tmp_path / "ct", tmp_path / "out" / "sr.dcm", world, scores, radii, points_voxel=voxels)
    assert out == tmp_path / "out" / "sr.dcm"
    assert [p.name for p in out.parent.iterdir()] == ["sr.dcm"]  # written atomically: no temporary left behind

    source = pydicom.dcmread(_ct_small(), stop_before_pixels=True)
    sr = hd.sr.srread(out)
    assert isinstance(sr, hd.sr.Comprehensive3DSR) and sr.Modality == "SR"
    assert sr.SeriesDescription == "medlearn detections"
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.PatientID == source.PatientID
    assert isinstance(sr.content, hd.sr.MeasurementReport)
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"

    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 3
    assert [g.tracking_identifier for g in groups] == ["candidate 1", "candidate 2", "candidate 3"]
    assert len({g.tracking_uid for g in groups}) == 3
    for group, point, score, radius in zip(groups, world, scores, radii, strict=True):
        assert group.finding_type == hd.sr.CodedConcept.from_code(codes.SCT.Lesion)
        assert isinstance(group.roi, hd.sr.ImageRegion3D)
        assert group.roi.graphic_type == hd.sr.GraphicTypeValues3D.POINT
        assert group.roi.frame_of_reference_uid == source.FrameOfReferenceUID
        np.testing.assert_allclose(group.roi.value, [point * LPS], atol=1e-3)
        value, unit = _measurement(group, codes.DCM.CertaintyOfFinding)
        assert value == pytest.approx(100 * score) and unit == codes.UCUM.Percent
        value, unit = _measurement(group, codes.SCT.Radius)
        assert value == pytest.approx(radius) and unit == codes.UCUM.Millimeter

    # the same points from the DICOM geometry alone: the first candidate (an integer voxel) lies on a source slice
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((tmp_path / "ct").iterdir())]
    column, row = (int(v) for v in voxels[0, :2])
    on_slices = [
        np.asarray(ds.ImagePositionPatient, float)
        + column * float(ds.PixelSpacing[1]) * np.asarray(ds.ImageOrientationPatient[:3], float)
        + row * float(ds.PixelSpacing[0]) * np.asarray(ds.ImageOrientationPatient[3:], float)
        for ds in headers
    ]
    assert min(np.linalg.norm(p - groups[0].roi.value[0]) for p in on_slices) < 1e-3

    # the algorithm as the observing device, the source instances as evidence
    observer = hd.sr.utils.find_content_items(sr, name=codes.DCM.DeviceObserverName)
    assert [item.TextValue for item in observer] == ["medlearn centre-heatmap"]
    evidence = sr.CurrentRequestedProcedureEvidenceSequence
    assert [study.StudyInstanceUID for study in evidence] == [source.StudyInstanceUID]
    (series,) = evidence[0].ReferencedSeriesSequence
    assert series.SeriesInstanceUID == headers[0].SeriesInstanceUID
    assert {item.ReferencedSOPInstanceUID for item in series.ReferencedSOPSequence} == set(uids)

    assert _dciodvfy_errors(out) == []


def test_a_source_without_patient_geometry_gets_points_on_the_image(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_ct_small())
    del ds.ImagePositionPatient  # no position in the patient: SCOORD3D would mean nothing
    ds.save_as(tmp_path / "slice.dcm")
    image = load(tmp_path / "slice.dcm")
    voxels = np.array([[10.0, 20.0], [40.25, 60.5]])  # (row, column) of a single frame

    out = write_detection_sr(
        tmp_path / "slice.dcm",
        tmp_path / "sr.dcm",
        _world(image, voxels),
        [0.8, 0.6],
        [1.5, 3.0],
        points_voxel=voxels,
        finding="Nodule",
    )
    groups = hd.sr.srread(out).content.get_planar_roi_measurement_groups()
    assert len(groups) == 2
    for group, (row, column) in zip(groups, voxels, strict=True):
        assert group.finding_type == hd.sr.CodedConcept.from_code(codes.SCT.Nodule)
        assert isinstance(group.roi, hd.sr.ImageRegion) and group.roi.graphic_type == hd.sr.GraphicTypeValues.POINT
        np.testing.assert_allclose(group.roi.value, [[column + 0.5, row + 0.5]], atol=1e-4)  # DICOM: column, row
        (reference,) = group.roi.ContentSequence[0].ReferencedSOPSequence
        assert reference.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert _dciodvfy_errors(out) == []

    with pytest.raises(MedlearnError, match="no patient geometry"):
        write_detection_sr(tmp_path / "slice.dcm", tmp_path / "again.dcm", _world(image, voxels), [0.8, 0.6], [1, 2])


def test_no_candidate_writes_nothing_and_bad_input_is_refused(tmp_path: Path, make_ct_series) -> None:
    make_ct_series(tmp_path / "ct", count=3)
    assert write_detection_sr(tmp_path / "ct", tmp_path / "sr.dcm", np.zeros((0, 3)), [], []) is None
    assert not (tmp_path / "sr.dcm").exists()

    point = np.zeros((1, 3))
    with pytest.raises(MedlearnError, match="must agree"):
        write_detection_sr(tmp_path / "ct", tmp_path / "sr.dcm", point, [0.5, 0.4], [1.0])
    with pytest.raises(MedlearnError, match="NaN or infinite"):
        write_detection_sr(tmp_path / "ct", tmp_path / "sr.dcm", point, [np.nan], [1.0])
    with pytest.raises(MedlearnError, match="no SNOMED CT concept"):
        write_detection_sr(tmp_path / "ct", tmp_path / "sr.dcm", point, [0.5], [1.0], finding="no such thing")
    assert not (tmp_path / "sr.dcm").exists()


def test_predict_outputs_hold_an_sr_for_dicom_input_only(tmp_path: Path, make_ct_series) -> None:
    from medlearn.apps.detection.model import Detections
    from medlearn.apps.detection.predict import _write_outputs

    make_ct_series(tmp_path / "ct")
    image = load(tmp_path / "ct")
    points = np.array([[20.0, 30.0, 2.0], [60.0, 90.0, 1.0], [5.0, 5.0, 4.0]])
    detections = Detections(points, _world(image, points), np.array([0.9, 0.7, 0.2]), np.array([3.0, 4.0, 2.0]))

    row = _write_outputs(tmp_path / "ct", "ct", image, detections, 0.5, tmp_path / "out")
    assert row["dicom_sr"] == str(tmp_path / "out" / "ct_sr.dcm") and row["found"] == 2
    groups = hd.sr.srread(row["dicom_sr"]).content.get_planar_roi_measurement_groups()
    assert len(groups) == 2  # the candidates at or above the threshold, best first
    np.testing.assert_allclose(groups[1].roi.value, [detections.world[1] * LPS], atol=1e-3)

    row = _write_outputs(tmp_path / "ct", "none", image, detections, 0.95, tmp_path / "out")
    assert row["dicom_sr"].startswith("not written") and not (tmp_path / "out" / "none_sr.dcm").exists()

    nifti = save(image, tmp_path / "ct.nii.gz")
    row = _write_outputs(nifti, "nifti", load(nifti), detections, 0.5, tmp_path / "out")
    assert "dicom_sr" not in row
