"""``localise predict`` for a box run: each volume's structure boxes as a boxes CSV (``label,x0,y0,z0,x1,y1,z1``
in world mm, RAS: the format ``localise train`` and ``detect train`` read, so a prediction can be corrected and
trained on), and ``boxes.csv`` listing every input with the structures it did not find."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.localisation.box_model import TrainedBoxLocaliser
from medlearn.data.files import image_inputs
from medlearn.data.outputs import distinct_stems, write_table
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.geometry import voxel_to_world
from medlearn.io.image import MedicalImage


@dataclass
class BoxPredictionOutcome:
    rows: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    table: Path | None = None


def box_rows(image: MedicalImage, boxes: dict[str, np.ndarray | None]) -> list[dict]:
    """One row per structure found: the box's world extent (mm, RAS: the min and max of its voxel-centre corners)."""
    rows = []
    for name, box in boxes.items():
        if box is None:
            continue
        corners = np.array([[box[a + 3 * ((c >> a) & 1)] for a in range(3)] for c in range(8)])
        world = voxel_to_world(image.affine, corners)
        low, high = world.min(axis=0), world.max(axis=0)
        row = {"label": name}
        row.update({f"{axis}0": round(float(v), 2) for axis, v in zip("xyz", low, strict=True)})
        row.update({f"{axis}1": round(float(v), 2) for axis, v in zip("xyz", high, strict=True)})
        rows.append(row)
    return rows


def predict_boxes(run_dir: Path, inputs: list[Path], out_dir: Path, *, strict: bool = False) -> BoxPredictionOutcome:
    localiser = TrainedBoxLocaliser.from_run_dir(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = BoxPredictionOutcome()
    paths = image_inputs(inputs)
    stems = distinct_stems(paths)
    for path in paths:
        try:
            image = load(path)
            boxes = localiser.predict(image)
        except MedlearnError as error:
            if strict:
                raise
            outcome.skipped.append((str(path), error.problem))
            continue
        rows = box_rows(image, boxes)
        table = out_dir / f"{stems[path]}_boxes.csv"
        if rows:
            write_table(table, rows)
        else:
            from medlearn.utils.atomic import write_text_atomic

            write_text_atomic(table, "label,x0,y0,z0,x1,y1,z1\n")
        missing = [name for name, box in boxes.items() if box is None]
        outcome.rows.append(
            {"input": str(path), "boxes_csv": str(table), "found": len(rows), "not_found": ";".join(missing)}
        )
    if not outcome.rows:
        raise MedlearnError("no input could be processed", out_dir)
    outcome.table = write_table(out_dir / "boxes.csv", outcome.rows)
    return outcome
