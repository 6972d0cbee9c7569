"""``detect predict``: candidates for new images, as tables a user can open and overlays a user can look at.

Per input: ``<stem>_candidates.csv`` (every candidate, best first: world ``x,y[,z]`` in mm RAS+, array indices
``i,j[,k]``, score, radius in mm) and ``<stem>_overlay.png`` (candidates at or above the run's operating
threshold circled); a DICOM input also gets ``<stem>_sr.dcm``, a DICOM SR (TID 1500) of those candidates as points
that a viewer shows on the original images (``io.dicom_sr``).
``candidates.csv`` lists every input with its count above that threshold. The operating
threshold is the score at which the model made one false positive per image on the run's validation images
(``val_metrics.json``); without it every candidate scoring 0.5 or more is shown.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.common.run_evaluation import VAL_METRICS_FILE
from medlearn.apps.detection.model import Detections, load_detector
from medlearn.data.files import image_inputs
from medlearn.data.outputs import FORMAT_DICOM, distinct_stems, write_table
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.dicom_sr import write_detection_sr
from medlearn.io.image import MedicalImage
from medlearn.utils.atomic import write_bytes_atomic

#: Score shown when the run has no validation operating point.
DEFAULT_THRESHOLD = 0.5
_AXES_WORLD, _AXES_INDEX = ("x", "y", "z"), ("i", "j", "k")


@dataclass
class PredictionOutcome:
    rows: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    table: Path | None = None
    threshold: float = DEFAULT_THRESHOLD


def operating_threshold(run_dir: Path) -> float:
    """The run's validation operating threshold (one false positive per image), or :data:`DEFAULT_THRESHOLD`."""
    path = Path(run_dir) / VAL_METRICS_FILE
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("operating_threshold")
    except (OSError, json.JSONDecodeError, AttributeError):
        return DEFAULT_THRESHOLD
    return float(value) if isinstance(value, int | float) else DEFAULT_THRESHOLD


def predict_images(
    run_dir: Path,
    inputs: list[Path],
    out_dir: Path,
    *,
    tta: bool | None = None,
    threshold: float | None = None,
    strict: bool = False,
) -> PredictionOutcome:
    """Detect in every input with a run's best model or an exported ``.onnx`` network; unreadable inputs are skipped
    and listed (``strict``: the first one fails)."""
    detector = load_detector(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if threshold is None:  # an exported file carries its run's operating threshold
        threshold = (detector.config or {}).get("operating_threshold") or operating_threshold(run_dir)
    outcome = PredictionOutcome(threshold=float(threshold))
    paths = image_inputs(inputs)
    stems = distinct_stems(paths)
    for path in paths:
        try:
            image = load(path)
            detections = detector.predict(image, tta=tta)
        except MedlearnError as error:
            if strict:
                raise
            outcome.skipped.append((str(path), error.problem))
            continue
        outcome.rows.append(_write_outputs(path, stems[path], image, detections, outcome.threshold, out_dir))
    if not outcome.rows:
        raise MedlearnError("no input could be processed", out_dir)
    outcome.table = write_table(out_dir / "candidates.csv", outcome.rows)
    return outcome


def candidate_rows(image: MedicalImage, detections: Detections) -> list[dict]:
    """One row per candidate: world coordinates (mm, RAS+), array indices, score and radius."""
    ndim = image.spatial_ndim
    world_axes = 3 if ndim == 3 else 2
    rows = []
    for point, world, score, radius in zip(
        detections.points, detections.world, detections.scores, detections.radius_mm, strict=True
    ):
        row = {axis: round(float(v), 3) for axis, v in zip(_AXES_WORLD[:world_axes], world, strict=False)}
        row.update({axis: round(float(v), 2) for axis, v in zip(_AXES_INDEX[:ndim], point, strict=True)})
        row.update({"score": round(float(score), 5), "radius_mm": round(float(radius), 2)})
        rows.append(row)
    return rows


def _write_outputs(
    path: Path, stem: str, image: MedicalImage, detections: Detections, threshold: float, out_dir: Path
) -> dict:
    from medlearn.report.overlays import FALSE_POSITIVE_COLOUR, point_overlay  # on first use: matplotlib colours

    table = out_dir / f"{stem}_candidates.csv"
    rows = candidate_rows(image, detections)
    header = [*(_AXES_WORLD[: 3 if image.spatial_ndim == 3 else 2]), *_AXES_INDEX[: image.spatial_ndim]]
    write_table(table, rows) if rows else _write_header(table, [*header, "score", "radius_mm"])
    shown = detections.above(threshold)
    spacing = np.asarray(image.spacing, dtype=float)
    voxel = float(np.prod(spacing) ** (1 / len(spacing)))
    markers = [(p, r / voxel, FALSE_POSITIVE_COLOUR) for p, r in zip(shown.points, shown.radius_mm, strict=True)]
    overlay, _ = point_overlay(image.array, image.spacing, markers)
    overlay_path = write_bytes_atomic(out_dir / f"{stem}_overlay.png", _png(overlay))
    row = {"input": str(path), "candidates": str(table), "overlay": str(overlay_path)}
    if image.format == FORMAT_DICOM:
        row["dicom_sr"] = str(_write_dicom_sr(path, out_dir / f"{stem}_sr.dcm", shown))
    return {**row, "found": len(shown), "threshold": round(threshold, 5)}


def _write_dicom_sr(source: Path, target: Path, shown: Detections) -> Path | str:
    """The candidates at or above the threshold as a DICOM SR of the source; an SR needs at least one."""
    written = write_detection_sr(source, target, shown.world, shown.scores, shown.radius_mm, points_voxel=shown.points)
    return "not written: no candidate at or above the threshold" if written is None else written


def _write_header(path: Path, columns: list[str]) -> Path:
    from medlearn.utils.atomic import write_text_atomic

    return write_text_atomic(path, ",".join(columns) + "\n")


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
