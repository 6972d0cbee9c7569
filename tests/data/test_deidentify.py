"""De-identification from the CLI on real DICOM (pydicom's CT series and ultrasound), NIfTI, PNG, JPEG and TIFF:
what must go is gone, what research needs stays consistent, outputs stay valid DICOM, and bad requests are refused.
"""

from __future__ import annotations

import csv
import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image, PngImagePlugin
from pydicom.data import get_testdata_file
from tests.io.dicom_validation import dciodvfy_errors

from medlearn.cli.main import main

SECRET = "a secret of more than sixteen characters"


def _series(folder: Path, make_ct_series) -> list[Path]:
    """The real CT series, with what de-identification must remove added: a private element, an overlay, free
    text, a birth date, patient characteristics."""
    make_ct_series(folder)
    files = sorted(folder.glob("*.dcm"))
    for file in files:
        ds = pydicom.dcmread(file)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "HOSP-123", "19700101"
        ds.StudyDescription, ds.ImageComments, ds.PatientAge, ds.PatientSex = "Jane's scan", "call Jane", "055Y", "F"
        block = ds.private_block(0x0009, "ACME", create=True)
        block.add_new(0x01, "LO", "Jane Doe again")
        ds.add_new(0x60003000, "OW", b"\0" * 8)  # overlay data
        ds.save_as(file)
    return files


def _outputs(out: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted((out / "dicom").rglob("*.dcm"))]


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


def test_a_ct_series_loses_identity_and_keeps_its_structure(tmp_path: Path, make_ct_series):
    originals = [pydicom.dcmread(p) for p in _series(tmp_path / "in", make_ct_series)]
    out, linkage = tmp_path / "out", tmp_path / "link.csv"
    command = ["data", "deidentify", str(tmp_path / "in"), "--out", str(out), "--secret-file", str(_secret(tmp_path))]
    assert main([*command, "--linkage", str(linkage)]) == 0
    outputs = _outputs(out)
    assert len(outputs) == len(originals) == 5
    for ds in outputs:
        text = str(ds)
        assert "Jane" not in text and "HOSP-123" not in text and "19700101" not in text
        assert not any(element.tag.is_private for element in ds.iterall())
        assert not any(0x6000 <= element.tag.group <= 0x60FF for element in ds)
        assert "StudyDescription" not in ds and "PatientAge" not in ds and ds.PatientSex == ""
        assert ds.PatientIdentityRemoved == "YES"
        assert {item.CodeValue for item in ds.DeidentificationMethodCodeSequence} == {"113100", "113107"}
        assert ds.SOPInstanceUID.startswith("2.25.") and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == originals[0].SOPClassUID  # a standard value stays
    # one series, study, frame of reference and patient still, under new identifiers
    for keyword in ("SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID", "PatientID"):
        assert len({ds.get(keyword) for ds in outputs}) == 1
        assert outputs[0].get(keyword) != originals[0].get(keyword)
    # dates moved by one offset: intervals kept
    shifted = datetime.datetime.strptime(outputs[0].StudyDate, "%Y%m%d")
    assert shifted != datetime.datetime.strptime(originals[0].StudyDate, "%Y%m%d")
    # still valid objects: no error dciodvfy did not already report for the input
    before = set(dciodvfy_errors(tmp_path / "in" / sorted(p.name for p in (tmp_path / "in").glob("*.dcm"))[0]))
    assert set(dciodvfy_errors(sorted((out / "dicom").rglob("*.dcm"))[0])) <= before
    report = (out / "deidentified.csv").read_text()
    assert "Jane" not in report and "HOSP-123" not in report and str(tmp_path / "in") not in report
    with open(linkage, newline="") as handle:
        links = list(csv.DictReader(handle))
    assert {row["original_patient_id"] for row in links} == {"HOSP-123"}
    assert {row["pseudonymous_patient_id"] for row in links} == {outputs[0].PatientID}


def test_the_same_secret_gives_the_same_pseudonyms_and_characteristics_can_stay(tmp_path: Path, make_ct_series):
    _series(tmp_path / "in", make_ct_series)
    secret = _secret(tmp_path)
    runs = {}
    for name, extra in (("a", []), ("b", []), ("c", ["--keep-characteristics"])):
        command = ["data", "deidentify", str(tmp_path / "in"), "--out", str(tmp_path / name), "--secret-file"]
        assert main([*command, str(secret), *extra]) == 0
        runs[name] = _outputs(tmp_path / name)
    assert [ds.SOPInstanceUID for ds in runs["a"]] == [ds.SOPInstanceUID for ds in runs["b"]]
    assert runs["a"][0].PatientID == runs["b"][0].PatientID
    kept = runs["c"][0]
    assert (
        kept.PatientAge == "055Y"
        and kept.PatientSex == "F"
        and "PatientBirthDate" in kept
        and not kept.PatientBirthDate
    )
    assert "113108" in {item.CodeValue for item in kept.DeidentificationMethodCodeSequence}
    other = tmp_path / "other.txt"
    other.write_text("another secret, also long enough")
    command = ["data", "deidentify", str(tmp_path / "in"), "--out", str(tmp_path / "d"), "--secret-file", str(other)]
    assert main(command) == 0
    assert _outputs(tmp_path / "d")[0].PatientID != runs["a"][0].PatientID


def test_ultrasound_is_withheld_until_its_pixels_are_reviewed(tmp_path: Path, capsys):
    source = Path(get_testdata_file("US1_J2KR.dcm"))
    assert main(["data", "deidentify", str(source), "--out", str(tmp_path / "a")]) == 0
    assert "pixels may show identifying text" in capsys.readouterr().err
    assert not (tmp_path / "a" / "dicom").exists()
    assert main(["data", "deidentify", str(source), "--out", str(tmp_path / "b"), "--allow-burned-in"]) == 0
    (written,) = _outputs(tmp_path / "b")
    assert written.PatientIdentityRemoved == "YES" and written.Modality == "US"


def test_other_formats_keep_pixels_and_geometry_and_nothing_else(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 1000, (8, 9, 4)).astype(np.int16)
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    nifti = nib.Nifti1Image(volume, affine)
    nifti.header["descrip"] = b"Jane Doe 1970"
    nifti.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"Jane Doe comment"))
    nib.save(nifti, folder / "jane_doe.nii.gz")
    picture = rng.integers(0, 255, (20, 30), dtype=np.uint8)
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Jane Doe")
    Image.fromarray(picture).save(folder / "jane.png", pnginfo=text)
    Image.fromarray(picture).save(folder / "jane.jpg", quality=95, comment=b"Jane Doe")
    tifffile.imwrite(folder / "jane.tif", picture, description="Jane Doe, 1970")
    (folder / "notes.txt").write_text("Jane Doe")
    out = tmp_path / "out"
    assert main(["data", "deidentify", str(folder), "--out", str(out)]) == 0
    written = {p.suffix if not p.name.endswith(".nii.gz") else ".nii.gz": p for p in (out / "files").iterdir()}
    assert set(written) == {".nii.gz", ".png", ".jpg", ".tif"} and not any("jane" in p.name for p in written.values())
    back = nib.load(written[".nii.gz"])
    assert not bytes(back.header["descrip"]).strip(b"\0") and not back.header.extensions
    np.testing.assert_array_equal(np.asarray(back.dataobj), volume)
    np.testing.assert_allclose(back.affine, affine)
    with Image.open(written[".png"]) as png:
        assert "Author" not in png.info
        np.testing.assert_array_equal(np.asarray(png), picture)
    with Image.open(written[".jpg"]) as jpg:
        assert b"Jane" not in written[".jpg"].read_bytes() and "comment" not in jpg.info
    assert b"Jane" not in written[".tif"].read_bytes()
    np.testing.assert_array_equal(tifffile.imread(written[".tif"]), picture)
    with open(out / "deidentified.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(row["written"] == "False" for row in rows) == 1  # the text file: not a format we de-identify
    assert "Jane" not in (out / "deidentified.csv").read_text()


@pytest.mark.parametrize("case", ["not empty", "linkage inside", "output inside input", "short secret"])
def test_bad_requests_are_refused_in_one_line(tmp_path: Path, capsys, case: str):
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(source / "a.png")
    out = tmp_path / "out"
    command = ["data", "deidentify", str(source), "--out", str(out)]
    expected = {
        "not empty": "not empty",
        "linkage inside": "outside the output folder",
        "output inside input": "inside an input folder",
        "short secret": "shorter than 16",
    }[case]
    if case == "not empty":
        out.mkdir()
        (out / "old.txt").write_text("x")
    elif case == "linkage inside":
        command += ["--linkage", str(out / "link.csv")]
    elif case == "output inside input":
        command = ["data", "deidentify", str(source), "--out", str(source / "out")]
    else:
        (tmp_path / "s.txt").write_text("short")
        command += ["--secret-file", str(tmp_path / "s.txt")]
    assert main(command) == 2
    assert expected in capsys.readouterr().err
