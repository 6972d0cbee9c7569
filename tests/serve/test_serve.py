"""The inference service through its HTTP API (FastAPI's test client): a classifier run and an exported
segmentation network served together, tokens required, real images in (Br35H JPEG, nuclei PNG, a CT DICOM series
as a ZIP), results equal to the CLI's, bad uploads answered in one line, an audit log without patient data, and
the viewer page."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medlearn.cli.main import main
from medlearn.errors import MedlearnError
from medlearn.serve.app import create_app
from medlearn.serve.auth import TokenStore
from medlearn.serve.models import load_served_models

TOKEN = "t" * 40
TILE = 64


@pytest.fixture(scope="module")
def client(runs: dict, tmp_path_factory) -> TestClient:
    log = tmp_path_factory.mktemp("log") / "audit.jsonl"
    models = load_served_models([runs["cls"], runs["onnx"]])
    app = create_app(models, TokenStore((TOKEN,)), max_upload_mb=5, audit_log=log)
    test_client = TestClient(app)
    test_client.audit_log = log
    return test_client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _post(client: TestClient, model: str, name: str, data: bytes, **params):
    return client.post(f"/models/{model}/predict", headers=AUTH, files={"file": (name, data)}, params=params)


def test_every_call_but_health_and_the_page_needs_a_token(client: TestClient):
    assert client.get("/health").json()["status"] == "ok"
    assert "medlearn viewer" in client.get("/").text
    assert client.get("/models").status_code == 401
    assert client.get("/models", headers={"Authorization": "Bearer " + "x" * 40}).status_code == 401
    assert client.post("/models/cls/predict", files={"file": ("a.png", b"x")}).status_code == 401  # no header
    listed = {m["name"]: m for m in client.get("/models", headers=AUTH).json()}
    assert listed["cls"]["task"] == "classification" and listed["cls"]["classes"] == ["no", "yes"]
    assert listed["nuclei"]["task"] == "segmentation" and listed["nuclei"]["labels"] == [0, 1]


def test_classification_answers_what_classify_predict_writes(client: TestClient, runs: dict, tmp_path: Path):
    answer = _post(client, "cls", "scan.jpg", runs["jpg"].read_bytes())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert main(["classify", "predict", str(runs["cls"]), str(runs["jpg"]), "--out", str(tmp_path / "p.csv")]) == 0
    (row,) = csv.DictReader((tmp_path / "p.csv").open())
    assert body["prediction"] == row["prediction"]
    assert body["probabilities"]["yes"] == pytest.approx(float(row["prob_yes"]), abs=1e-5)


def test_segmentation_answers_sizes_an_overlay_and_the_mask(client: TestClient, runs: dict, tmp_path: Path):
    body = _post(client, "nuclei", "tile.png", runs["png"].read_bytes()).json()
    assert body["task"] == "segmentation" and body["shape"] == [TILE, TILE] and "area_mm2_1" in body["sizes"]
    import base64

    assert base64.b64decode(body["overlay_png"]).startswith(b"\x89PNG")
    mask = _post(client, "nuclei", "tile.png", runs["png"].read_bytes(), output="mask")
    assert mask.headers["content-type"] == "image/png"
    served = np.asarray(Image.open(io.BytesIO(mask.content)))
    assert main(["segment", "predict", str(runs["onnx"]), str(runs["png"]), "--out", str(tmp_path / "m")]) == 0
    np.testing.assert_array_equal(served, np.asarray(Image.open(tmp_path / "m" / "t5_mask.png")))
    assert _post(client, "cls", "tile.png", runs["png"].read_bytes(), output="mask").status_code == 400


def test_a_zipped_dicom_series_is_one_volume(client: TestClient, tmp_path: Path, make_ct_series):
    make_ct_series(tmp_path / "ct")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for number, file in enumerate(sorted((tmp_path / "ct").iterdir())):
            bundle.write(file, f"../../escape{number}.dcm")  # hostile names: never used
    answer = _post(client, "cls", "series.zip", archive.getvalue())
    assert answer.status_code == 200, answer.text
    last = json.loads(client.audit_log.read_text().splitlines()[-1])
    assert last["shape"] == [96, 128, 5]  # the five files became one volume (columns, rows, slices)
    assert not (tmp_path.parent / "escape0.dcm").exists()


@pytest.mark.parametrize(
    ("name", "data", "status", "words"),
    [
        ("notes.txt", b"hello", 400, "cannot read .txt uploads"),
        ("scan.png", b"not a png", 400, "not an image file"),
        ("empty.png", b"", 400, "empty"),
        ("big.png", b"0" * (6 << 20), 413, "larger than 5 MB"),
        ("bad.zip", b"PK not really", 400, "not a readable ZIP"),
    ],
)
def test_bad_uploads_are_answered_in_one_line(client: TestClient, name, data, status, words):
    answer = _post(client, "cls", name, data)
    assert answer.status_code == status and words in answer.json()["detail"]
    assert "Traceback" not in answer.text


def test_unknown_models_and_the_audit_log_name_no_patient(client: TestClient, runs: dict):
    assert _post(client, "cls", "scan.jpg", runs["jpg"].read_bytes()).status_code == 200
    assert _post(client, "nope", "a.png", runs["png"].read_bytes()).status_code == 404
    lines = [json.loads(line) for line in client.audit_log.read_text().splitlines()]
    assert lines and all(
        set(line) <= {"time", "token", "model", "output", "status", "seconds", "shape"} for line in lines
    )
    assert {line["status"] for line in lines} >= {200, 404} and TOKEN not in client.audit_log.read_text()


def test_token_files_must_be_strong_and_private(tmp_path: Path):
    path = tmp_path / "tokens"
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(MedlearnError, match="shorter than 32"):
        TokenStore.from_file(path)
    path.write_text("# a comment\n" + TOKEN + "\n")
    path.chmod(0o644)
    if os.name == "posix":
        with pytest.raises(MedlearnError, match="chmod 600"):
            TokenStore.from_file(path)
    path.chmod(0o600)
    assert TokenStore.from_file(path).tokens == (TOKEN,)
