"""``localise predict``: the landmarks of new images as a 3D Slicer markups file (``<stem>_landmarks.fcsv``, RAS
world millimetres, names kept) and a CSV (name, world ``x,y[,z]``, array indices ``i,j[,k]``, score), plus
``landmarks.csv`` listing every input."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.localisation.landmark_model import Landmarks, load_localiser
from medlearn.data.files import image_inputs
from medlearn.data.outputs import distinct_stems, write_table
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.markups import write_fcsv

_AXES_WORLD, _AXES_INDEX = ("x", "y", "z"), ("i", "j", "k")


@dataclass
class PredictionOutcome:
    rows: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    table: Path | None = None


def landmark_rows(found: Landmarks, ndim: int) -> list[dict]:
    rows = []
    for name, point, world, score in zip(found.names, found.points, found.world, found.scores, strict=True):
        row = {"name": name}
        row.update(
            {axis: round(float(v), 3) for axis, v in zip(_AXES_WORLD[: 3 if ndim == 3 else 2], world, strict=False)}
        )
        row.update({axis: round(float(v), 2) for axis, v in zip(_AXES_INDEX[:ndim], point, strict=True)})
        row["score"] = round(float(score), 5)
        rows.append(row)
    return rows


def predict_images(run_dir: Path, inputs: list[Path], out_dir: Path, *, strict: bool = False) -> PredictionOutcome:
    """Localise the landmarks of every input with a run's best model or an exported ``.onnx`` network; unreadable
    inputs are skipped and listed (``strict``: fail)."""
    localiser = load_localiser(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = PredictionOutcome()
    paths = image_inputs(inputs)
    stems = distinct_stems(paths)
    for path in paths:
        try:
            image = load(path)
            found = localiser.predict(image)
        except MedlearnError as error:
            if strict:
                raise
            outcome.skipped.append((str(path), error.problem))
            continue
        stem = stems[path]
        table = write_table(out_dir / f"{stem}_landmarks.csv", landmark_rows(found, image.spatial_ndim))
        row = {"input": str(path), "landmarks_csv": str(table)}
        if image.spatial_ndim == 3:
            descriptions = [f"score {score:.3f}" for score in found.scores]
            fcsv = write_fcsv(out_dir / f"{stem}_landmarks.fcsv", np.asarray(found.world), found.names, descriptions)
            row["landmarks_fcsv"] = str(fcsv)
        outcome.rows.append(row)
    if not outcome.rows:
        raise MedlearnError("no input could be processed", out_dir)
    outcome.table = write_table(out_dir / "landmarks.csv", outcome.rows)
    return outcome
