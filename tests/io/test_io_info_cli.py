"""``describe`` never leaks identifying DICOM data; ``medlearn info`` prints it or one error line."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
import typer
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from medlearn.cli import info_cmd
from medlearn.errors import ImageReadError
from medlearn.io import describe, load

CT = get_testdata_file("CT_small.dcm")


def _identifying_values(path: str) -> list[str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    names = (
        "PatientName",
        "PatientID",
        "StudyDate",
        "InstitutionName",
        "StudyInstanceUID",
        "SeriesInstanceUID",
    )
    values = [str(ds.get(name)) for name in names if ds.get(name)]
    assert len(values) >= 5  # the sample really carries identifiers
    return values


def test_describe_reports_geometry_and_only_safe_tags() -> None:
    summary = describe(load(CT))
    text = json.dumps(summary)
    for value in _identifying_values(CT):
        assert value not in text
    assert summary["shape"] == [1, 128, 128] and summary["dtype"] == "float32"
    assert summary["spacing"] == pytest.approx([0.661468, 0.661468])
    assert summary["modality"] == "CT" and summary["dicom"]["Manufacturer"] == "GE MEDICAL SYSTEMS"
    assert summary["value_range"]["min"] < -800 and summary["rescale"]["intercept"] == -1024.0


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Test root so that ``info`` is a sub-command as in the real CLI."""

    info_cmd.register(app)
    return app


def test_info_command_table_and_json() -> None:
    runner = CliRunner()
    table = runner.invoke(_app(), ["info", CT])
    assert table.exit_code == 0, table.output
    assert "spacing" in table.output and "128 x 128" in table.output and "0.661468" in table.output
    for value in _identifying_values(CT):
        assert value not in table.output
    as_json = runner.invoke(_app(), ["info", CT, "--json"])
    assert json.loads(as_json.output)["spatial_shape"] == [128, 128]


def test_info_command_raises_medlearn_error_for_bad_file(tmp_path: Path) -> None:
    (tmp_path / "broken.dcm").write_bytes(b"\x00" * 64)
    result = CliRunner().invoke(_app(), ["info", str(tmp_path / "broken.dcm")])
    assert isinstance(result.exception, ImageReadError)


def _main():
    from medlearn.cli.main import main

    return main


def test_main_info_prints_description(capsys: pytest.CaptureFixture[str]) -> None:
    main = _main()
    assert main(["info", CT]) == 0
    out = capsys.readouterr().out
    assert "spatial_shape" in out and "0.661468" in out
    assert "CompressedSamples" not in out


def test_main_info_bad_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = _main()
    bad = tmp_path / "truncated.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "truncated.png" in err and "Traceback" not in err
    assert err.startswith("medlearn: error: ")
