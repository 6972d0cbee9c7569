"""``medlearn data deidentify``: every DICOM, NIfTI, PNG, JPEG and TIFF file under the inputs, de-identified into a
new folder, with a report that names no patient.

Names carry identity too, so outputs are renamed: DICOM objects to ``dicom/<patient>/<study>/<series>/<sop>.dcm``
by their new pseudonymous IDs and UIDs, other files to ``files/<pseudonym>.<ext>`` (a keyed hash of the source
path). ``deidentified.csv`` lists each output, what was done and what was not written and why; it holds no source
path. The link back (source path -> output, original -> pseudonymous patient ID) is written only to a separate
``linkage`` file when asked, outside the output folder. The same secret gives the same pseudonyms in a later run,
so new files of a patient join the earlier ones.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from medlearn.data.deidentify.dicom import DicomDeidentifier
from medlearn.data.deidentify.files import deidentify_file, suffix_of, supported
from medlearn.errors import MedlearnError
from medlearn.utils.atomic import atomic_path, write_csv_atomic

REPORT_COLUMNS = ("output", "kind", "written", "actions", "warning")
LINKAGE_COLUMNS = ("source", "output", "original_patient_id", "pseudonymous_patient_id")


@dataclass
class DeidentificationReport:
    rows: list[dict] = field(default_factory=list)
    linkage: list[dict] = field(default_factory=list)
    secret_given: bool = True

    @property
    def written(self) -> int:
        return sum(1 for row in self.rows if row["written"])

    @property
    def withheld(self) -> list[dict]:
        return [row for row in self.rows if not row["written"]]


def deidentify(
    inputs: Sequence[Path],
    out: Path,
    *,
    secret: str | None = None,
    keep_characteristics: bool = False,
    allow_burned_in: bool = False,
    linkage: Path | None = None,
) -> DeidentificationReport:
    """De-identify every supported file under ``inputs`` into ``out`` (module docstring)."""
    out = Path(out).resolve()
    files = _files(inputs, out)
    if out.exists() and any(out.iterdir()):
        raise MedlearnError("the output folder is not empty: de-identified files are never mixed or overwritten", out)
    if linkage is not None and Path(linkage).resolve().is_relative_to(out):
        raise MedlearnError("the linkage file re-identifies the outputs: write it outside the output folder", linkage)
    report = DeidentificationReport(secret_given=secret is not None)
    secret = secret if secret is not None else secrets.token_hex(16)
    dicom = DicomDeidentifier(secret, keep_characteristics=keep_characteristics)
    for source in files:
        report.rows.append(_one(source, out, dicom, secret, allow_burned_in, report.linkage))
    write_csv_atomic(out / "deidentified.csv", REPORT_COLUMNS, report.rows)
    if linkage is not None:
        write_csv_atomic(linkage, LINKAGE_COLUMNS, report.linkage)
    return report


def _files(inputs: Sequence[Path], out: Path) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        item = Path(item)
        if not item.exists():
            raise MedlearnError("no such file or folder", item)
        if out.is_relative_to(item.resolve()) and item.is_dir():
            raise MedlearnError("the output folder is inside an input folder: choose another place", out)
        files += sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
    if not files:
        raise MedlearnError("no files under the inputs", inputs[0] if inputs else ".")
    return files


def _one(source: Path, out: Path, dicom: DicomDeidentifier, secret: str, allow_burned_in: bool, links: list) -> dict:
    dataset = _read_dicom(source)
    if dataset is not None:
        return _dicom(source, dataset, out, dicom, allow_burned_in, links)
    if not supported(source):
        return {"output": "", "kind": suffix_of(source) or "no suffix", "written": False, "actions": "",
                "warning": "not a format medlearn de-identifies (DICOM, NIfTI, PNG, JPEG, TIFF): left out"}  # fmt: skip
    pseudonym = hmac.new(secret.encode(), str(source.resolve()).encode(), hashlib.sha256).hexdigest()[:16]
    target = out / "files" / f"{pseudonym}{suffix_of(source)}"
    try:
        actions = deidentify_file(source, target)
    except MedlearnError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged file of any format: reported, the run goes on
        return {"output": "", "kind": suffix_of(source), "written": False, "actions": "",
                "warning": f"unreadable ({type(error).__name__}): left out"}  # fmt: skip
    links.append({"source": str(source), "output": str(target.relative_to(out))})
    row = {"output": str(target.relative_to(out)), "kind": suffix_of(source), "written": True}
    return {**row, "actions": "; ".join(actions), "warning": "file name replaced; pixels not inspected for text"}


def _read_dicom(path: Path) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, KeyError):
        return None


def _dicom(source: Path, dataset, out: Path, dicom: DicomDeidentifier, allow_burned_in: bool, links: list) -> dict:
    original_patient = str(dataset.get("PatientID", ""))
    outcome = dicom(dataset)
    parts = [dataset.get("PatientID") or "unknown", dataset.get("StudyInstanceUID", "study"),
             dataset.get("SeriesInstanceUID", "series")]  # fmt: skip
    target = out / "dicom" / Path(*map(str, parts)) / f"{dataset.get('SOPInstanceUID', 'object')}.dcm"
    row = {"output": str(target.relative_to(out)), "kind": f"DICOM {dataset.get('Modality', '')}".strip()}
    if outcome.burned_in and not allow_burned_in:
        return {**row, "output": "", "written": False, "actions": "; ".join(outcome.actions),
                "warning": f"pixels may show identifying text ({outcome.burned_in}): not written; review it and "
                "pass --allow-burned-in"}  # fmt: skip
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getvalue())
    links.append({"source": str(source), "output": row["output"], "original_patient_id": original_patient,
                  "pseudonymous_patient_id": str(dataset.get("PatientID", ""))})  # fmt: skip
    warning = f"pixels may show identifying text ({outcome.burned_in}): written as allowed" if outcome.burned_in else ""
    return {**row, "written": True, "actions": "; ".join(outcome.actions), "warning": warning}


def read_report(out: Path) -> list[dict]:
    with open(Path(out) / "deidentified.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
