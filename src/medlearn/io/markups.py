"""Point and box annotations as users have them (landmark localisation, detection): pure file parsing, no image.

Formats read:

- **points CSV** (``*.csv``): a header row, then one point per row. Coordinates are either ``i,j[,k]`` --
  array indices, fractional allowed, in the order :func:`medlearn.io.load` returns the image's spatial axes
  (``MedicalImage.array[0, i, j, k]``) -- or ``x,y[,z]`` in world millimetres, RAS+ (the space of
  ``MedicalImage.affine``). Optional columns: ``radius_mm`` (empty cell: no radius), ``label`` (the class) and
  ``name`` (a landmark's name). Header names are case-insensitive; a header without rows is a negative image.
- **boxes CSV** (``*.csv``): ``[label,]x0,y0[,z0],x1,y1[,z1]`` in world millimetres, RAS+, low corner then
  high corner on each axis.
- **3D Slicer fiducial CSV** (``*.fcsv``): ``#`` lines are headers. ``# CoordinateSystem = 0`` / ``RAS`` or
  ``= 1`` / ``LPS``; a file without that line is RAS (Slicer's own default when reading, and all that Slicer
  3 and early Slicer 4 wrote). Columns follow ``# columns = ...`` (Slicer 3's ``label,x,y,z,sel,vis`` and
  Slicer 4/5's ``id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID``, the default when the line
  is missing). Point names come from ``label``.
- **3D Slicer Markups JSON** (``*.mrk.json``, schema ``markups-schema-v1.0.x``): every control point of every
  markup in the file; names are the control point labels. Points whose ``positionStatus`` is ``undefined`` or
  that have no position (placeholders of a fixed-size list) are skipped.

World coordinates are always returned in RAS+ millimetres, as ``MedicalImage.affine`` uses: LPS input
(DICOM's convention and Slicer's default on disk since 4.11) is converted by negating x and y.

Every problem with a file raises :class:`~medlearn.errors.MedlearnError` naming the file and the row, line or
control point, never a traceback from the csv or json modules. Duplicate points are kept: whether they are
an error is the caller's decision.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.io.geometry import world_to_voxel
from medlearn.io.image import MedicalImage
from medlearn.utils.atomic import write_text_atomic

__all__ = [
    "BoxSet",
    "PointSet",
    "read_annotation_file",
    "read_boxes_csv",
    "read_fcsv",
    "read_markups_json",
    "read_points_csv",
    "write_fcsv",
]

POINT_COLUMNS = ("i", "j", "k", "x", "y", "z", "radius_mm", "label", "name")
"""Columns a points CSV may have."""

BOX_COLUMNS = ("label", "x0", "y0", "z0", "x1", "y1", "z1")
"""Columns a boxes CSV may have."""

FCSV_DEFAULT_COLUMNS = (
    "id",
    "x",
    "y",
    "z",
    "ow",
    "ox",
    "oy",
    "oz",
    "vis",
    "sel",
    "lock",
    "label",
    "desc",
    "associatedNodeID",
)
"""Slicer 4/5 fiducial columns, used when a ``.fcsv`` has no ``# columns`` line."""

_FCSV_VERSION = "4.11"
"""Written in the header of our ``.fcsv`` files: the first version with string coordinate systems."""


@dataclass(frozen=True, eq=False)
class PointSet:
    """Points read from one annotation file.

    ``coordinates`` is ``(N, d)`` float64 with d = 2 or 3. ``space`` says what they mean: ``"index"`` --
    array indices in the order :func:`medlearn.io.load` returns the image's spatial axes; ``"world"`` --
    millimetres, RAS+, as ``MedicalImage.affine``. ``radius_mm`` is NaN where the file gives no radius;
    ``labels`` (class) and ``names`` (landmark name) are ``""`` where the file has none.
    (``eq=False``: numpy arrays make field-wise equality ambiguous, so sets compare by identity.)
    """

    coordinates: np.ndarray
    space: Literal["index", "world"]
    radius_mm: np.ndarray
    labels: tuple[str, ...]
    names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        coordinates = np.asarray(self.coordinates, dtype=np.float64)
        if coordinates.ndim != 2 or coordinates.shape[1] not in (2, 3):
            raise ValueError(f"PointSet coordinates must be (N, 2) or (N, 3), got shape {coordinates.shape}")
        count = coordinates.shape[0]
        radius = np.asarray(self.radius_mm, dtype=np.float64)
        if radius.shape != (count,):
            raise ValueError(f"PointSet radius_mm must have shape ({count},), got {radius.shape}")
        if self.space not in ("index", "world"):
            raise ValueError(f"PointSet space must be 'index' or 'world', got {self.space!r}")
        labels, names = tuple(self.labels), tuple(self.names)
        if len(labels) != count or len(names) != count:
            raise ValueError(f"PointSet has {count} points but {len(labels)} labels and {len(names)} names")
        object.__setattr__(self, "coordinates", coordinates)
        object.__setattr__(self, "radius_mm", radius)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "source", str(self.source))

    def __len__(self) -> int:
        return int(self.coordinates.shape[0])


@dataclass(frozen=True, eq=False)
class BoxSet:
    """Axis-aligned boxes read from one annotation file: ``low``/``high`` are ``(N, d)`` corners in world
    millimetres, RAS+ (``low <= high`` on every axis); ``labels`` is ``""`` where the file has none."""

    low: np.ndarray
    high: np.ndarray
    labels: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        low = np.asarray(self.low, dtype=np.float64)
        high = np.asarray(self.high, dtype=np.float64)
        if low.ndim != 2 or low.shape[1] not in (2, 3) or high.shape != low.shape:
            raise ValueError(f"BoxSet low/high must both be (N, 2) or (N, 3), got {low.shape} and {high.shape}")
        labels = tuple(self.labels)
        if len(labels) != low.shape[0]:
            raise ValueError(f"BoxSet has {low.shape[0]} boxes but {len(labels)} labels")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "source", str(self.source))

    def __len__(self) -> int:
        return int(self.low.shape[0])


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers


def _read_text(path: Path) -> str:
    """The whole file as text; a missing, unreadable or non-UTF-8 file becomes a MedlearnError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MedlearnError("file not found", path) from None
    except IsADirectoryError:
        raise MedlearnError("is a folder, not an annotation file", path) from None
    except OSError as error:
        raise MedlearnError(f"cannot read the file: {error.strerror or error}", path) from None
    try:
        return data.decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as error:
        raise MedlearnError(f"not UTF-8 text (byte {error.start}); save the file as UTF-8", path) from None


def _csv_rows(text: str, path: Path, first_line: int = 1) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with the line each starts on. Strict: an unclosed quote would otherwise swallow the
    following rows into one cell, losing points silently; csv's complaints become MedlearnErrors naming the line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = first_line
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                raise MedlearnError(f"line {line}: not valid CSV: a quoted value is never closed", path) from None
            raise MedlearnError(f"line {first_line + reader.line_num - 1}: not valid CSV ({error})", path) from None
        if any(cell.strip() for cell in row):
            yield line, row
        line = first_line + reader.line_num


def _number(text: str, what: str, where: str, path: Path) -> float:
    """A finite float from a cell, or a MedlearnError naming the row and the column."""
    text = text.strip()
    if not text:
        raise MedlearnError(f"{where}: {what} is empty", path)
    try:
        value = float(text)
    except ValueError:
        raise MedlearnError(f"{where}: {what} is not a number ({text!r})", path) from None
    if not math.isfinite(value):
        raise MedlearnError(f"{where}: {what} is not a finite number ({text!r})", path)
    return value


def _csv_table(path: Path, accepted: Sequence[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Header (lower-case, stripped, checked against ``accepted``) and the data rows, each with the place
    name errors use (``row 3 (line 4)``). Rows must have as many cells as the header (extra empty cells are
    forgiven: spreadsheets add them)."""
    rows = _csv_rows(_read_text(path), path)
    first = next(rows, None)
    if first is None:
        raise MedlearnError("empty file: expected a header row", path)
    header_line, raw_header = first
    header = [cell.strip().lower() for cell in raw_header]
    while header and not header[-1]:
        header.pop()
    for column in header:
        if column not in accepted:
            hint = " (the file must be comma-separated)" if (";" in column or "\t" in column) else ""
            raise MedlearnError(
                f"line {header_line}: unknown column {column!r}{hint}; accepted columns: {', '.join(accepted)}", path
            )
    for column in set(header):
        if header.count(column) > 1:
            raise MedlearnError(f"line {header_line}: column {column!r} appears {header.count(column)} times", path)
    table = []
    for number, (line, row) in enumerate(rows, start=1):
        where = f"row {number} (line {line})"
        if len(row) > len(header) and not any(cell.strip() for cell in row[len(header) :]):
            row = row[: len(header)]
        if len(row) != len(header):
            raise MedlearnError(f"{where}: {len(row)} values, but the header has {len(header)} columns", path)
        table.append((where, row))
    return header, table


def _coordinate_columns(header: list[str], axes: Sequence[str], path: Path) -> list[str]:
    """The ``axes`` (e.g. ``i,j,k``) the header has: none, or the first two with the third optional."""
    present = [axis for axis in axes if axis in header]
    if present and (axes[0] not in present or axes[1] not in present):
        raise MedlearnError(f"column(s) {', '.join(present)} without both {axes[0]} and {axes[1]}", path)
    return present


# ---------------------------------------------------------------------------------------------------------------
# CSV


def read_points_csv(path: str | Path) -> PointSet:
    """Points from a CSV with ``i,j[,k]`` (index) or ``x,y[,z]`` (world mm, RAS+) columns, plus optional
    ``radius_mm``, ``label``, ``name``. A header without rows gives an empty set (a negative image)."""
    path = Path(path)
    header, table = _csv_table(path, POINT_COLUMNS)
    if any(axis in header for axis in "ijk") and any(axis in header for axis in "xyz"):
        raise MedlearnError("both index (i, j, k) and world (x, y, z) columns: give one kind of coordinates", path)
    index_axes = _coordinate_columns(header, ("i", "j", "k"), path)
    world_axes = _coordinate_columns(header, ("x", "y", "z"), path)
    axes = index_axes or world_axes
    if not axes:
        raise MedlearnError("no coordinate columns: expected i,j[,k] (array indices) or x,y[,z] (world mm, RAS)", path)
    columns = {name: header.index(name) for name in header}
    coordinates = np.empty((len(table), len(axes)), dtype=np.float64)
    radius = np.full(len(table), np.nan)
    labels: list[str] = []
    names: list[str] = []
    for n, (where, row) in enumerate(table):
        for a, axis in enumerate(axes):
            coordinates[n, a] = _number(row[columns[axis]], axis, where, path)
        if "radius_mm" in columns and row[columns["radius_mm"]].strip():
            radius[n] = _number(row[columns["radius_mm"]], "radius_mm", where, path)
            if radius[n] < 0:
                raise MedlearnError(f"{where}: radius_mm is negative ({radius[n]:g})", path)
        labels.append(row[columns["label"]].strip() if "label" in columns else "")
        names.append(row[columns["name"]].strip() if "name" in columns else "")
    space: Literal["index", "world"] = "index" if index_axes else "world"
    return PointSet(coordinates, space, radius, tuple(labels), tuple(names), str(path))


def read_boxes_csv(path: str | Path) -> BoxSet:
    """Boxes from a CSV with ``[label,]x0,y0[,z0],x1,y1[,z1]`` in world mm, RAS+; a high corner below the low
    one is an error (rather than silently swapped: it usually means the columns are not what the header says)."""
    path = Path(path)
    header, table = _csv_table(path, BOX_COLUMNS)
    axes = ["x", "y", "z"] if ("z0" in header or "z1" in header) else ["x", "y"]
    missing = [f"{axis}{end}" for axis in axes for end in "01" if f"{axis}{end}" not in header]
    if missing:
        raise MedlearnError(f"missing box column(s) {', '.join(missing)}: expected label,x0,y0[,z0],x1,y1[,z1]", path)
    columns = {name: header.index(name) for name in header}
    low = np.empty((len(table), len(axes)), dtype=np.float64)
    high = np.empty_like(low)
    labels: list[str] = []
    for n, (where, row) in enumerate(table):
        for a, axis in enumerate(axes):
            low[n, a] = _number(row[columns[f"{axis}0"]], f"{axis}0", where, path)
            high[n, a] = _number(row[columns[f"{axis}1"]], f"{axis}1", where, path)
            if high[n, a] < low[n, a]:
                raise MedlearnError(f"{where}: {axis}1 ({high[n, a]:g}) is below {axis}0 ({low[n, a]:g})", path)
        labels.append(row[columns["label"]].strip() if "label" in columns else "")
    return BoxSet(low, high, tuple(labels), str(path))


# ---------------------------------------------------------------------------------------------------------------
# 3D Slicer


def _slicer_space(value: str, where: str, path: Path) -> Literal["RAS", "LPS"]:
    """Slicer's coordinate system codes: ``RAS``/``0`` and ``LPS``/``1``."""
    code = value.strip().upper()
    if code in ("RAS", "0"):
        return "RAS"
    if code in ("LPS", "1"):
        return "LPS"
    raise MedlearnError(f"{where}: coordinate system {value.strip()!r} is not supported (RAS/0 or LPS/1)", path)


def read_fcsv(path: str | Path) -> PointSet:
    """World points (mm, RAS+) from a 3D Slicer fiducial CSV; LPS files are converted by negating x and y."""
    path = Path(path)
    text = _read_text(path)
    space: Literal["RAS", "LPS"] = "RAS"
    columns = [column.lower() for column in FCSV_DEFAULT_COLUMNS]
    lines = text.splitlines()
    first_data = len(lines)
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            first_data = number - 1
            break
        key, sep, value = stripped[1:].partition("=")
        key = key.strip().lower()
        if not sep:
            continue
        if key == "coordinatesystem":
            space = _slicer_space(value, f"line {number}", path)
        elif key == "columns":
            columns = [column.strip().lower() for column in value.split(",")]
    for axis in "xyz":
        if axis not in columns:
            raise MedlearnError(f"the '# columns' line has no {axis!r} column", path)
    where_xyz = [columns.index(axis) for axis in "xyz"]
    label_at = columns.index("label") if "label" in columns else None

    body = "\n".join(line if not line.lstrip().startswith("#") else "" for line in lines[first_data:])
    coordinates: list[list[float]] = []
    names: list[str] = []
    for line, row in _csv_rows(body, path, first_line=first_data + 1):
        where = f"line {line}"
        if len(row) <= max(where_xyz):
            raise MedlearnError(f"{where}: {len(row)} values, too few for x, y, z (columns {', '.join(columns)})", path)
        coordinates.append([_number(row[i], axis, where, path) for i, axis in zip(where_xyz, "xyz", strict=True)])
        names.append(row[label_at].strip() if label_at is not None and label_at < len(row) else "")
    array = np.asarray(coordinates, dtype=np.float64).reshape(-1, 3)
    if space == "LPS":
        array[:, :2] *= -1.0
    count = len(names)
    return PointSet(array, "world", np.full(count, np.nan), ("",) * count, tuple(names), str(path))


_UNITS_TO_MM = {"mm": 1.0, "um": 1e-3}
"""``coordinateUnits`` the Markups schema allows, as factors to millimetres."""


def _units_factor(markup: dict[str, Any], where: str, path: Path) -> float:
    units = markup.get("coordinateUnits", "mm")
    if isinstance(units, list) and units:  # DICOM-style code: ["mm", "UCUM", "millimeter"]
        units = units[0]
    if not isinstance(units, str) or units.strip() not in _UNITS_TO_MM:
        raise MedlearnError(f"{where}: coordinateUnits {units!r} is not supported (mm or um)", path)
    return _UNITS_TO_MM[units.strip()]


def _json_number(value: Any, what: str, where: str, path: Path) -> float:
    """A finite float from a JSON value (``true`` is not a number; Python's json reads ``NaN``/``Infinity``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MedlearnError(f"{where}: {what} is not a number ({value!r})", path)
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise MedlearnError(f"{where}: {what} is not a finite number ({value!r})", path)
    return number


def read_markups_json(path: str | Path) -> PointSet:
    """World points (mm, RAS+) from every markup of a 3D Slicer Markups JSON file.

    A markup without ``coordinateSystem`` is LPS: the schema's default, and what Slicer writes since 4.11.
    Control points whose ``positionStatus`` is ``undefined`` or that have no position are skipped: Slicer keeps
    such placeholders in fixed-size lists and writes them with ``"position": ""``.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise MedlearnError(f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})", path) from None
    except RecursionError:
        raise MedlearnError("not valid JSON: nested too deeply", path) from None
    markups = document.get("markups") if isinstance(document, dict) else None
    if not isinstance(markups, list):
        raise MedlearnError("no 'markups' list: not a 3D Slicer Markups JSON file", path)
    coordinates: list[list[float]] = []
    names: list[str] = []
    for m, markup in enumerate(markups, start=1):
        where_markup = f"markup {m}"
        if not isinstance(markup, dict):
            raise MedlearnError(f"{where_markup} is not a JSON object", path)
        space = _slicer_space(str(markup.get("coordinateSystem", "LPS")), where_markup, path)
        factor = _units_factor(markup, where_markup, path)
        points = markup.get("controlPoints") or []
        if not isinstance(points, list):
            raise MedlearnError(f"{where_markup}: controlPoints is not a list", path)
        for p, point in enumerate(points, start=1):
            if not isinstance(point, dict):
                raise MedlearnError(f"{where_markup}, control point {p} is not a JSON object", path)
            label = point.get("label")
            label = "" if label is None else str(label)
            where = f"{where_markup}, control point {p}" + (f" ({label!r})" if label else "")
            position = point.get("position")
            if point.get("positionStatus") == "undefined" or position in (None, "", []):
                continue  # Slicer writes "position": "" for points not (or not yet) placed
            if not isinstance(position, list) or len(position) != 3:
                raise MedlearnError(f"{where}: position must be 3 numbers, got {position!r}", path)
            xyz = [_json_number(value, axis, where, path) * factor for axis, value in zip("xyz", position, strict=True)]
            if space == "LPS":
                xyz[0], xyz[1] = -xyz[0], -xyz[1]
            coordinates.append(xyz)
            names.append(label)
    array = np.asarray(coordinates, dtype=np.float64).reshape(-1, 3)
    count = len(names)
    return PointSet(array, "world", np.full(count, np.nan), ("",) * count, tuple(names), str(path))


def write_fcsv(
    path: str | Path,
    world_ras: np.ndarray,
    names: Sequence[str],
    descriptions: Sequence[str] | None = None,
) -> Path:
    """Write ``(N, 3)`` world points (mm, RAS+) as a 3D Slicer fiducial CSV with a RAS header, atomically.

    RAS is written (rather than Slicer's current LPS default) because it is medlearn's world space, so the
    numbers in the file are the ones the caller passed; every Slicer version reads ``RAS`` correctly.
    """
    points = np.asarray(world_ras, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"write_fcsv needs (N, 3) world coordinates, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("write_fcsv: coordinates must be finite")
    count = points.shape[0]
    descriptions = [""] * count if descriptions is None else list(descriptions)
    names = list(names)
    if len(names) != count or len(descriptions) != count:
        raise ValueError(f"write_fcsv: {count} points but {len(names)} names and {len(descriptions)} descriptions")
    for text in (*names, *descriptions):
        if "\n" in str(text) or "\r" in str(text):
            raise ValueError(f"write_fcsv: names and descriptions must be single-line, got {text!r}")
    buffer = io.StringIO()
    buffer.write(f"# Markups fiducial file version = {_FCSV_VERSION}\n")
    buffer.write("# CoordinateSystem = RAS\n")
    buffer.write("# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n")
    writer = csv.writer(buffer, lineterminator="\n")  # quotes a label holding a comma, as Slicer does
    for n, (xyz, name, description) in enumerate(zip(points, names, descriptions, strict=True)):
        coords = [repr(float(v)) for v in xyz]  # shortest text that reads back to the same float64
        writer.writerow([str(n + 1), *coords, 0, 0, 0, 1, 1, 1, 0, str(name), str(description), ""])
    return write_text_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------------------------
# Dispatch


def read_annotation_file(path: str | Path) -> PointSet | BoxSet:
    """Read any supported annotation file by suffix: ``.fcsv``, ``.mrk.json``/``.json``, or ``.csv`` (boxes if
    the header has ``x0``/``x1``-style columns, points otherwise)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".fcsv"):
        return read_fcsv(path)
    if name.endswith(".json"):
        return read_markups_json(path)
    if name.endswith(".csv"):
        first = next(_csv_rows(_read_text(path), path), None)
        header = {cell.strip().lower() for cell in first[1]} if first else set()
        if header & {"x0", "y0", "z0", "x1", "y1", "z1"}:
            return read_boxes_csv(path)
        return read_points_csv(path)
    raise MedlearnError("unknown annotation format: expected .csv, .fcsv or .mrk.json", path)


def points_on_image(points: PointSet, image: MedicalImage) -> np.ndarray:
    """``(N, d)`` voxel coordinates of the points on ``image``'s grid; points outside it are an error."""
    ndim = image.spatial_ndim
    if len(points) == 0:
        return np.zeros((0, ndim))
    coordinates = np.asarray(points.coordinates, dtype=np.float64).reshape(len(points), -1)
    if points.space == "index":
        if coordinates.shape[1] != ndim:
            raise MedlearnError(
                f"points have {coordinates.shape[1]} index coordinates, the image is {ndim}D", points.source
            )
        voxels = coordinates
    else:
        if coordinates.shape[1] not in (ndim, 3):
            raise MedlearnError(
                f"points have {coordinates.shape[1]} world coordinates, the image is {ndim}D", points.source
            )
        voxels = np.array([world_to_voxel(image, point) for point in coordinates])
    shape = np.asarray(image.spatial_shape)
    outside = np.flatnonzero(np.any((voxels < -0.5) | (voxels > shape - 0.5), axis=1))
    if outside.size:
        first = int(outside[0])
        raise MedlearnError(
            f"{outside.size} point(s) lie outside the image {image.source} (shape {tuple(shape)}); point "
            f"{first + 1} is at voxel {np.round(voxels[first], 1).tolist()}",
            points.source,
        )
    return voxels
