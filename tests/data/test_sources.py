from __future__ import annotations

import csv
from pathlib import Path

import pytest

from medlearn.data.sources import load_samples, samples_from_csv, samples_from_folder
from medlearn.errors import MedlearnError


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_folder_of_class_folders(planted):
    samples = samples_from_folder(planted["root"])
    assert {s.label for s in samples} == {"no", "yes"}
    assert len(samples) == 2 * 16 + 3
    assert all(s.path.exists() for s in samples)


def test_dicom_series_folder_counts_as_one_image(tmp_path: Path):
    from pydicom.data import get_testdata_file

    series = tmp_path / "cls" / "patient1"
    series.mkdir(parents=True)
    source = Path(get_testdata_file("CT_small.dcm"))
    for i in range(3):
        (series / f"slice{i}.dcm").write_bytes(source.read_bytes())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "one.dcm").write_bytes(source.read_bytes())
    samples = samples_from_folder(tmp_path)
    assert [(s.path.name, s.label) for s in samples] == [("patient1", "cls"), ("one.dcm", "other")]


def test_csv_resolves_relative_paths_and_reads_groups(planted, tmp_path: Path):
    image = planted["chosen"]["no"][0]
    manifest = _csv(planted["root"] / "m.csv", ["path", "label", "patient_id"], [[f"no/{image.name}", "no", "p1"]])
    (sample,) = samples_from_csv(manifest)
    assert sample.path == planted["root"] / "no" / image.name
    assert sample.group == "p1" and sample.label == "no"
    assert load_samples(manifest) == [sample]


def test_csv_missing_files_are_reported_with_rows(tmp_path: Path):
    manifest = _csv(tmp_path / "m.csv", ["path", "label"], [["a.png", "x"], ["b.png", "y"]])
    with pytest.raises(MedlearnError) as error:
        samples_from_csv(manifest)
    message = str(error.value)
    assert "m.csv" in message and "2 listed files do not exist" in message and "row 2" in message


def test_csv_without_path_column(tmp_path: Path):
    manifest = _csv(tmp_path / "m.csv", ["file", "label"], [["a.png", "x"]])
    with pytest.raises(MedlearnError, match="'path'"):
        samples_from_csv(manifest)


def test_empty_csv_and_empty_folder(tmp_path: Path):
    (tmp_path / "e.csv").write_text("path,label\n")
    with pytest.raises(MedlearnError, match="no rows"):
        samples_from_csv(tmp_path / "e.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedlearnError, match="no class sub-folders"):
        samples_from_folder(tmp_path / "empty")


def test_br35h_source(br35h_root):
    samples = load_samples("br35h")
    assert len(samples) == 3000
    assert sum(s.label == "yes" for s in samples) == 1500


def test_csv_without_label_column_names_the_csv(tmp_path: Path):
    manifest = _csv(tmp_path / "unlabelled.csv", ["path", "group"], [["a.png", "p1"]])
    with pytest.raises(MedlearnError, match="'label'") as error:
        samples_from_csv(manifest)
    assert "unlabelled.csv" in str(error.value)
