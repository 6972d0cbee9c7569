"""``segment predict``: masks for new images, in each input's own format and geometry.

NIfTI in -> NIfTI mask, NRRD -> NRRD, PNG/JPEG/TIFF/BMP -> PNG mask (label values as pixel values);
a DICOM series or file -> a DICOM SEG object referencing the source instances (so a PACS viewer shows
it on the original series) plus a NIfTI copy for research tools. Every input also gets a PNG overlay,
and ``predictions.csv`` lists what was written with the segmented volume per label.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.segmentation.model import load_segmenter
from medlearn.data.files import image_inputs
from medlearn.data.outputs import FORMAT_DICOM, distinct_stems, output_suffix, write_table
from medlearn.errors import MedlearnError
from medlearn.io import load, save
from medlearn.io.dicom_seg import write_dicom_seg
from medlearn.utils.atomic import write_bytes_atomic


@dataclass
class PredictionOutcome:
    rows: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    table: Path | None = None


def predict_images(
    run_dir: Path, inputs: list[Path], out_dir: Path, *, tta: bool | None = None, strict: bool = False
) -> PredictionOutcome:
    """Segment every input with a run's best model or an exported ``.onnx`` network; unreadable inputs are skipped
    and listed (``strict``: the first one fails)."""

    segmenter = load_segmenter(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = PredictionOutcome()
    paths = image_inputs(inputs)
    stems = distinct_stems(paths)
    for path in paths:
        try:
            image = load(path)
            prediction = segmenter.predict(image, tta=tta)
        except MedlearnError as error:
            if strict:
                raise
            outcome.skipped.append((str(path), error.problem))
            continue
        outcome.rows.append(_write_outputs(path, stems[path], image, prediction.mask, segmenter.plan.labels, out_dir))
    if not outcome.rows:
        raise MedlearnError("no input could be segmented", out_dir)
    outcome.table = write_table(out_dir / "predictions.csv", outcome.rows)
    return outcome


def _write_outputs(path: Path, stem: str, image, mask, labels: list[int], out_dir: Path) -> dict:
    row: dict = {"input": str(path)}
    mask_path = out_dir / f"{stem}_mask{output_suffix(path, mask)}"
    row["mask"] = str(save(mask, mask_path))
    if image.format == FORMAT_DICOM:
        row["dicom_seg"] = str(_write_dicom_seg(mask, path, out_dir / f"{stem}_seg.dcm", labels))
    row["overlay"] = str(write_bytes_atomic(out_dir / f"{stem}_overlay.png", overlay_png(image, mask)))
    row.update(label_sizes(image, mask, labels))
    return row


def overlay_png(image, mask) -> bytes:
    """The mask over the image (the slice with the most foreground of a volume), as PNG bytes."""
    from medlearn.report.overlays import volume_overlay  # on first use: matplotlib's colour maps

    overlay, _ = volume_overlay(image.array, image.spacing, mask.array[0])
    return _png(overlay)


def label_sizes(image, mask, labels: list[int]) -> dict[str, float]:
    """Per foreground label, its volume in ml (volumes) or area in mm² (2D images): ``volume_ml_<label>``."""
    volume = image.spatial_ndim == 3
    unit, per_voxel = ("volume_ml", np.prod(image.spacing) / 1000.0) if volume else ("area_mm2", np.prod(image.spacing))
    return {f"{unit}_{label}": round(float((mask.array[0] == label).sum() * per_voxel), 3) for label in labels if label}


def _write_dicom_seg(mask, source: Path, target: Path, labels: list[int]) -> Path | str:

    if not mask.array.any():
        return "not written: empty prediction"
    names = {label: f"label {label}" for label in labels if label}
    return write_dicom_seg(mask.array[0], source, target, labels=names, series_description="medlearn segmentation")


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
