"""The DICOM node of the service: a real CT series and an MR image sent over DICOM (pynetdicom as the sender),
each series run through a served model once complete, results written without patient data (a DICOM SEG for
segmentation, which dciodvfy accepts), received copies deleted, unknown senders refused."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE, StoragePresentationContexts
from tests.io.dicom_validation import dciodvfy_errors

from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.serve.dicom_node import DicomNode, series_digest
from medlearn.serve.models import load_served_model


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _send(port: int, files: list[Path], calling: str = "SCANNER") -> bool:
    sender = AE(ae_title=calling)
    sender.requested_contexts = StoragePresentationContexts[:100]
    association = sender.associate("127.0.0.1", port, ae_title="MEDLEARN")
    if not association.is_established:
        return False
    statuses = [association.send_c_store(pydicom.dcmread(file)).Status for file in files]
    association.release()
    return all(status == 0 for status in statuses)


def _wait_for(path: Path, seconds: float = 60.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file():
            return json.loads(path.read_text())
        time.sleep(0.2)
    raise AssertionError(f"no {path} after {seconds} s")


@pytest.fixture
def node(runs: dict, tmp_path: Path):
    def start(model_path: Path) -> tuple[DicomNode, int]:
        started = DicomNode(load_served_model(model_path), tmp_path / "node", allowed={"SCANNER"}, settle_seconds=0.5)
        port = _free_port()
        started.start("127.0.0.1", port)
        nodes.append(started)
        return started, port

    nodes: list[DicomNode] = []
    yield start
    for started in nodes:
        started.stop()


def test_a_series_sent_over_dicom_is_classified_once_complete(node, runs: dict, tmp_path: Path, make_ct_series):
    make_ct_series(tmp_path / "ct")
    files = sorted((tmp_path / "ct").iterdir())
    running, port = node(runs["cls"])
    assert _send(port, files)
    series = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    result = _wait_for(tmp_path / "node" / "results" / series_digest(series) / "result.json")
    expected = running.model.predict(load(tmp_path / "ct")).result  # the same volume, read from the source files
    assert result["status"] == "done" and result["prediction"] == expected["prediction"]
    assert result["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    assert not (tmp_path / "node" / "incoming" / series_digest(series)).exists()  # the copies are gone
    text = json.dumps(result)
    assert series not in text and "CompressedSamples" not in text  # no UID, no patient name in the result


def test_segmentation_results_go_back_as_a_valid_dicom_seg(node, runs: dict, tmp_path: Path):
    source = Path(get_testdata_file("MR_small.dcm"))
    _, port = node(runs["onnx"])
    assert _send(port, [source])
    folder = tmp_path / "node" / "results" / series_digest(str(pydicom.dcmread(source).SeriesInstanceUID))
    result = _wait_for(folder / "result.json")
    assert result["status"] == "done", result  # a 64x64 MR image: the 2D nuclei network takes it
    seg = pydicom.dcmread(folder / "segmentation.dcm")
    assert seg.Modality == "SEG" and (folder / "overlay.png").is_file()
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(source).SeriesInstanceUID
    assert not dciodvfy_errors(folder / "segmentation.dcm")


def test_a_series_the_model_cannot_take_fails_in_one_line(node, runs: dict, tmp_path: Path, make_ct_series):
    make_ct_series(tmp_path / "ct")
    files = sorted((tmp_path / "ct").iterdir())
    _, port = node(runs["onnx"])  # a 2D network, sent a volume
    assert _send(port, files)
    series = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    result = _wait_for(tmp_path / "node" / "results" / series_digest(series) / "result.json")
    assert result["status"] == "failed" and "2D" in result["error"]


def test_unknown_senders_are_refused_and_an_open_node_is_not_allowed(node, runs: dict, tmp_path: Path):
    _, port = node(runs["cls"])
    assert not _send(port, [Path(get_testdata_file("CT_small.dcm"))], calling="STRANGER")
    with pytest.raises(MedlearnError, match="AE titles allowed"):
        DicomNode(load_served_model(runs["cls"]), tmp_path / "open")
