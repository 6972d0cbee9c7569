"""``medlearn register evaluate``: a registration method over a CSV of image pairs, beside the identity (no
registration at all), with 95% bootstrap intervals over pairs.

The CSV has ``fixed,moving`` and optionally ``fixed_labels,moving_labels`` (label maps on each image's grid: Dice
and HD95 of the warped moving labels against the fixed ones, mean over the labels) and ``fixed_points,
moving_points`` (landmark files with named points, world mm: the target registration error of each fixed point
mapped into the moving image against the moving point of the same name). Paths are relative to the CSV's folder.
Every pair also gets the deformation's folding share and SD of log-Jacobian and the seconds it took.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.apps.registration.classical import Registerer
from medlearn.apps.registration.figures import overlay_png
from medlearn.data.deformation import jacobian_determinant
from medlearn.errors import MedlearnError
from medlearn.evaluation.registration import bootstrap_mean_interval, regularity, target_registration_error
from medlearn.evaluation.segmentation import segmentation_metrics
from medlearn.io import load
from medlearn.io.geometry import check_same_geometry, image_from_affine
from medlearn.io.image import MedicalImage
from medlearn.io.itk import displacement_field, resample_like, transform_points
from medlearn.io.markups import PointSet, read_annotation_file
from medlearn.io.warp import resample_to_reference
from medlearn.utils.atomic import write_text_atomic

#: Pairs whose images (before / after / Jacobian) the report shows.
EXAMPLES = 3
OPTIONAL_PAIRS = (("fixed_labels", "moving_labels"), ("fixed_points", "moving_points"))
SUMMARY_KEYS = ("dice", "hd95_mm", "tre_mm", "folding_fraction", "sdlogj", "seconds")


@dataclass(frozen=True)
class ImagePair:
    fixed: Path
    moving: Path
    fixed_labels: Path | None = None
    moving_labels: Path | None = None
    fixed_points: Path | None = None
    moving_points: Path | None = None


def read_pairs(path: str | Path) -> list[ImagePair]:
    """The pairs of a CSV (see the module docstring); a missing column pair or file is an error naming the CSV."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise MedlearnError(f"cannot read the pairs CSV ({error})", path) from None
    if not rows or not {"fixed", "moving"} <= set(rows[0]):
        raise MedlearnError("a pairs CSV needs the columns fixed,moving (and optionally labels and points)", path)
    pairs = []
    for number, row in enumerate(rows, start=2):
        fixed, moving = _cell(row, "fixed", number, path), _cell(row, "moving", number, path)
        if fixed is None or moving is None:
            raise MedlearnError(f"line {number}: fixed and moving are both needed", path)
        extras = {column: _cell(row, column, number, path) for names in OPTIONAL_PAIRS for column in names}
        for first, second in OPTIONAL_PAIRS:
            if (extras[first] is None) != (extras[second] is None):
                raise MedlearnError(f"line {number}: {first} and {second} go together", path)
        pairs.append(ImagePair(fixed, moving, **extras))
    return pairs


def _cell(row: dict, column: str, number: int, csv_path: Path) -> Path | None:
    """A path cell resolved against the CSV's folder (empty: None); a missing file is an error naming the line."""
    value = (row.get(column) or "").strip()
    if not value:
        return None
    target = Path(value) if Path(value).is_absolute() else csv_path.parent / value
    if not target.exists():
        raise MedlearnError(f"line {number}: {column} {value!r} does not exist", csv_path)
    return target


def evaluate_pairs(
    pairs: list[ImagePair], registerer: Registerer, name: str, baselines: dict[str, Registerer] | None = None
) -> dict:
    """Register every pair with ``registerer`` (called ``name``), score it, and summarise (means with bootstrap
    intervals); the identity (no registration) and each of ``baselines`` (classical methods beside a trained
    model) are scored on the same pairs under ``baseline``."""
    examples: list[bytes] = []
    rows = [
        _evaluate_pair(pair, registerer, examples if index < EXAMPLES else None) for index, pair in enumerate(pairs)
    ]
    summary: dict = {"method": name, "pairs": len(rows), **summarise(rows)}
    identity = {}
    for key in ("dice", "hd95_mm", "tre_mm"):
        values = [row[f"identity_{key}"] for row in rows if row.get(f"identity_{key}") is not None]
        identity[key] = float(np.mean(values)) if values else None
    summary["baseline"] = {"identity": identity}
    for baseline, other in (baselines or {}).items():
        summary["baseline"][baseline] = summarise([_evaluate_pair(pair, other) for pair in pairs])
    summary["per_pair"] = rows
    summary["examples"] = examples  # overlay PNGs of the first pairs (the report shows them; not written to JSON)
    return summary


def summarise(rows: list[dict]) -> dict:
    """Means over pairs of every summary key (``seconds`` as ``seconds_per_pair``), intervals for the accuracies."""
    summary: dict = {}
    for key in SUMMARY_KEYS:
        values = [row[key] for row in rows if row.get(key) is not None]
        name = "seconds_per_pair" if key == "seconds" else key
        summary[name] = float(np.mean(values)) if values else None
        if key in ("dice", "hd95_mm", "tre_mm"):
            summary[f"{name}_ci"] = bootstrap_mean_interval(values)
    return summary


def _evaluate_pair(pair: ImagePair, registerer: Registerer, examples: list[bytes] | None = None) -> dict:
    """Scores of one pair; with ``examples`` its overlay (before, after, Jacobian) is appended there."""
    fixed, moving = load(pair.fixed), load(pair.moving)
    result = registerer(fixed, moving, None)
    row: dict = {"fixed": str(pair.fixed), "moving": str(pair.moving), "seconds": round(result.seconds, 3)}
    determinant = jacobian_determinant(displacement_field(result.transform, fixed))
    row.update({k: v for k, v in regularity(determinant).items() if k != "min_jacobian"})
    if examples is not None:
        jacobian = image_from_affine(determinant[None].astype(np.float32), fixed.affine)
        warped = resample_like(moving, fixed, result.transform)
        examples.append(overlay_png(fixed, resample_to_reference(moving, fixed), warped, jacobian))
    if pair.fixed_labels is not None and pair.moving_labels is not None:
        truth, labels = load(pair.fixed_labels), load(pair.moving_labels)
        check_same_geometry(fixed, truth)
        check_same_geometry(moving, labels)
        warped = resample_like(labels, fixed, result.transform, labels=True)
        identity = resample_to_reference(labels, fixed, order=0)
        row["dice"], row["hd95_mm"] = _overlap(warped, truth)
        row["identity_dice"], row["identity_hd95_mm"] = _overlap(identity, truth)
    if pair.fixed_points is not None and pair.moving_points is not None:
        fixed_points, moving_points = _named(pair.fixed_points), _named(pair.moving_points)
        shared = [name for name in fixed_points if name in moving_points]
        if not shared:
            raise MedlearnError("the fixed and moving point files share no point name", pair.moving_points)
        start = np.array([fixed_points[name] for name in shared])
        target = np.array([moving_points[name] for name in shared])
        mapped = transform_points(result.transform, start, plane=fixed)
        row["tre_mm"] = float(target_registration_error(mapped, target).mean())
        row["identity_tre_mm"] = float(target_registration_error(start, target).mean())
        row["points"] = len(shared)
    return row


def _overlap(warped: MedicalImage, truth: MedicalImage) -> tuple[float, float | None]:
    """Mean Dice and HD95 (mm) over the labels of either map."""
    prediction, expected = np.rint(warped.array[0]).astype(int), np.rint(truth.array[0]).astype(int)
    labels = sorted(set(np.unique(prediction)) | set(np.unique(expected)) - {0})
    per_label = segmentation_metrics(prediction, expected, truth.spacing, labels)
    dice = [v["dice"] for v in per_label.values() if np.isfinite(v["dice"])]
    hd95 = [v["hd95_mm"] for v in per_label.values() if np.isfinite(v["hd95_mm"])]
    return (float(np.mean(dice)) if dice else float("nan")), (float(np.mean(hd95)) if hd95 else None)


def _named(path: Path) -> dict[str, np.ndarray]:
    points = read_annotation_file(path)
    if not isinstance(points, PointSet) or points.space != "world":
        raise MedlearnError("registration points must be named world positions (.fcsv, .mrk.json, CSV x,y[,z])", path)
    world = np.zeros((len(points), 3))
    world[:, : points.coordinates.shape[1]] = points.coordinates
    names = [name or label for name, label in zip(points.names, points.labels, strict=True)]
    if len(set(names)) != len(names) or not all(names):
        raise MedlearnError("every registration point needs its own name (or label)", path)
    return dict(zip(names, world, strict=True))


def write_summary(summary: dict, path: Path) -> Path:
    plain = {key: value for key, value in summary.items() if key != "examples"}
    return write_text_atomic(path, json.dumps(plain, indent=2) + "\n")
