"""A DICOM node in front of a served model: a PACS or a modality sends studies to it (C-STORE), it runs the model
on every complete series and leaves the results in a folder.

pynetdicom does the networking: a storage SCP for the image storage classes, accepting only the calling AE titles
it is told to (a hospital network is no reason to trust every sender). Instances are written under
``incoming/<series>/`` as they arrive; a series that has received nothing for ``settle_seconds`` counts as
complete, is loaded as one image (a volume for a CT/MR series) and run through the model. Results go to
``results/<series digest>/``: ``result.json`` (the task's answer; no patient data), the overlay PNG and, for
segmentation, the mask as a DICOM SEG object referencing the source series (so a PACS can take it back).
The received files are deleted once processed unless asked to keep them: copies of patient data do not linger.
The log names series by a digest of their UID, never by patient.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import threading
import time
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt

from medlearn.errors import MedlearnError
from medlearn.serve.models import ServedModel
from medlearn.utils.atomic import write_bytes_atomic, write_text_atomic

log = logging.getLogger("medlearn.serve")
#: DIMSE status codes returned to the sender.
SUCCESS, OUT_OF_RESOURCES = 0x0000, 0xA700


def series_digest(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


class DicomNode:
    """See the module docstring. ``allowed`` calling AE titles (empty: every sender is refused)."""

    def __init__(
        self,
        model: ServedModel,
        out: Path,
        *,
        ae_title: str = "MEDLEARN",
        allowed: set[str] | frozenset[str] = frozenset(),
        settle_seconds: float = 5.0,
        keep_incoming: bool = False,
    ) -> None:
        if not allowed:
            raise MedlearnError("name the AE titles allowed to send (--dicom-allow): the node refuses everyone else")
        self.model, self.out, self.settle_seconds, self.keep_incoming = model, Path(out), settle_seconds, keep_incoming
        self.ae = AE(ae_title=ae_title)
        self.ae.supported_contexts = AllStoragePresentationContexts
        self.ae.require_calling_aet = sorted(allowed)
        self._arrivals: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = None
        self._worker: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self, host: str, port: int) -> None:
        (self.out / "incoming").mkdir(parents=True, exist_ok=True)
        (self.out / "results").mkdir(parents=True, exist_ok=True)
        handlers = [(evt.EVT_C_STORE, self._on_store)]
        self._server = self.ae.start_server((host, port), block=False, evt_handlers=handlers)
        self._worker = threading.Thread(target=self._process_loop, name="medlearn-dicom-node", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._worker is not None:
            self._worker.join(timeout=30)

    # -- receiving -------------------------------------------------------------------------------------------
    def _on_store(self, event) -> int:
        try:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            series = str(dataset.SeriesInstanceUID)
            folder = self.out / "incoming" / series_digest(series)
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{hashlib.sha256(str(dataset.SOPInstanceUID).encode()).hexdigest()[:20]}.dcm"
            dataset.save_as(target, enforce_file_format=True)
        except Exception as error:  # noqa: BLE001 - any failure is the sender's answer, never a crash of the node
            log.warning("could not store an instance: %s", type(error).__name__)
            return OUT_OF_RESOURCES
        with self._lock:
            self._arrivals[series] = time.monotonic()
        return SUCCESS

    # -- processing ------------------------------------------------------------------------------------------
    def _process_loop(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                ready = [uid for uid, last in self._arrivals.items() if now - last >= self.settle_seconds]
                for uid in ready:
                    del self._arrivals[uid]
            for uid in ready:
                self.process(uid)

    def process(self, series_uid: str) -> Path:
        """Run the model on the received series ``series_uid``; returns its results folder."""
        from medlearn.io import load

        digest = series_digest(series_uid)
        incoming = self.out / "incoming" / digest
        results = self.out / "results" / digest
        started = time.perf_counter()
        try:
            image = load(incoming)
            prediction = self.model.predict(image)
            answer = {k: v for k, v in prediction.result.items() if k != "overlay_png"}
            if "overlay_png" in prediction.result:
                write_bytes_atomic(results / "overlay.png", base64.b64decode(prediction.result["overlay_png"]))
            if prediction.mask is not None:
                from medlearn.io.dicom_seg import write_dicom_seg

                labels = {label: f"label {label}" for label in answer.get("labels", []) if label}
                write_dicom_seg(prediction.mask.array[0], incoming, results / "segmentation.dcm", labels=labels)
            status = "done"
        except MedlearnError as error:
            answer, status = {"error": error.problem}, "failed"
        seconds = round(time.perf_counter() - started, 3)
        document = {"model": self.model.name, "task": self.model.task, "series": digest, "status": status,
                    "seconds": seconds, **answer}  # fmt: skip
        write_text_atomic(results / "result.json", json.dumps(document, indent=2) + "\n")
        log.info("series %s: %s in %.2f s", digest, status, seconds)
        if not self.keep_incoming:
            shutil.rmtree(incoming, ignore_errors=True)
        return results
