"""``medlearn data audit`` through Typer's test runner, on real images with planted leaks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from medlearn.cli import data_cmd
from medlearn.errors import MedlearnError


@pytest.fixture
def app(tmp_path: Path, monkeypatch) -> typer.Typer:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the hash cache goes to a fresh ~/.cache
    app = typer.Typer()
    data_cmd.register(app)
    return app


def _write_manifest(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "patient_id", "split"])
        writer.writerows(rows)
    return path


def test_audit_reports_facts_leaks_and_straddlers(app, planted, tmp_path: Path):
    root = planted["root"]
    no_images = planted["chosen"]["no"]
    rows = []
    for label in ("no", "yes"):
        for i, image in enumerate(sorted((root / label).glob("*.*"))):
            rows.append([f"{label}/{image.name}", label, f"{label}-{i}", "train" if i % 4 else "val"])
    for row in rows:
        if row[0] == f"yes/{planted['copies'][0].name}":
            row[3] = "test"  # a resized copy in test while its original is in train: a duplicate straddles
        if row[0] in (f"no/{no_images[1].name}", f"no/{no_images[2].name}"):
            row[2], row[3] = "patient-X", "train" if row[0].endswith(no_images[1].name) else "test"
    manifest = _write_manifest(root / "audited.csv", rows)
    out = tmp_path / "out" / "audit.json"

    result = CliRunner().invoke(app, ["data", "audit", str(manifest), "--json", str(out)])

    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["images"] == len(rows)
    assert report["class_balance"] == {"no": sum(r[1] == "no" for r in rows), "yes": sum(r[1] == "yes" for r in rows)}
    sizes = [Image.open(root / r[0]).size for r in rows]
    assert report["smallest_size"] == "x".join(map(str, min(sizes, key=lambda s: s[0] * s[1])))
    assert report["largest_size"] == "x".join(map(str, max(sizes, key=lambda s: s[0] * s[1])))
    assert report["bit_depths"] == {"8-bit": len(rows)}
    assert sum(report["channels"].values()) == len(rows)
    assert report["duplicate_groups"] == 1 and report["images_in_duplicate_groups"] == 4
    straddling = {" ".join(sorted(group)) for group in report["straddling_duplicates"]}
    assert len(straddling) == 2  # the planted duplicate family, and patient-X across train/test
    assert any(f"{planted['copies'][0].name} (test)" in group for group in straddling)
    assert any(f"{no_images[2].name} (test)" in group for group in straddling)
    assert report["grouped_split_test_leaks"] == 0
    assert "near-duplicate groups" in result.output and "straddl" in result.output


def test_audit_of_a_manifest_with_missing_files_names_it(app, tmp_path: Path):
    manifest = _write_manifest(tmp_path / "broken.csv", [["gone.png", "no", "p1", "train"]])
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(app, ["data", "audit", str(manifest), "--json", str(out)])
    assert isinstance(result.exception, MedlearnError)
    assert "broken.csv" in str(result.exception) and "gone.png" in str(result.exception)
    assert not out.exists()  # no half-written output
