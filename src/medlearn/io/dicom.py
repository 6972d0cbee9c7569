"""DICOM reading: single-frame and multi-frame files and series folders, in physical units and RAS.

Why the extra work over ``ds.pixel_array``: slices of a series arrive in any order and their
spacing is only trustworthy from ImagePositionPatient (SliceThickness is the slab, not the step);
CT is only meaningful in Hounsfield units after RescaleSlope/Intercept; MONOCHROME1 must be
inverted so that bright means dense everywhere; and world coordinates must be RAS like NIfTI.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from medlearn.errors import ImageReadError
from medlearn.io.color import channels_identical
from medlearn.io.geometry import LPS_TO_RAS, affine_from_axes, image_from_affine
from medlearn.io.guards import check_voxels, reading
from medlearn.io.image import MedicalImage

SAFE_TAGS = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "SeriesDescription",
    "BodyPartExamined",
    "ImageType",
    "KVP",
    "MagneticFieldStrength",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
)
"""Technical, non-identifying attributes kept in ``tags["dicom"]``: no names, IDs, UIDs, dates,
accession numbers or institutions, so describing an image can never leak who it belongs to."""


def read_dicom(path: Path, series_uid: str | None = None) -> MedicalImage:
    """Read a DICOM file or a folder holding one series (or several, chosen by ``series_uid``)."""
    if path.is_dir():
        return _read_series(path, series_uid)
    header = _read_header(path)
    if series_uid and header.get("SeriesInstanceUID") != series_uid:
        raise ImageReadError(f"file belongs to series {header.get('SeriesInstanceUID')}, not {series_uid}", path)
    return _read_file(path, header)


def _read_header(path: Path) -> Dataset:
    with reading(path):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    if "Rows" not in ds or "Columns" not in ds:
        sop = UID(ds.get("SOPClassUID", "")).name or "unknown SOP class"
        raise ImageReadError(f"DICOM file has no Rows/Columns: not an image ({sop}) or truncated", path)
    return ds


def _frames(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def _check_size(ds: Dataset, path: Path, files: int = 1) -> None:
    check_voxels((files, _frames(ds), ds.Rows, ds.Columns, ds.get("SamplesPerPixel") or 1), path)


# --- pixels -------------------------------------------------------------------------------------


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    """``pixel_array`` with a clear message when no installed codec handles the transfer syntax."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageReadError("DICOM file has no pixel data", path)
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    try:
        array = ds.pixel_array
    except Exception as error:
        if syntax is not None and syntax.is_compressed:
            detail = (str(error).strip().splitlines() or [type(error).__name__])[-1].strip()[:200]
            raise ImageReadError(
                f"cannot decode pixel data compressed as {syntax.name} ({syntax}): "
                f"no installed codec could decode it ({detail})",
                path,
            ) from error
        raise
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _functional(ds: Dataset, sequence: str, name: str, frame: int = 0) -> Any:
    """An attribute from the top level, else the shared or per-frame functional groups (enhanced)."""
    if name in ds:
        return ds.get(name)
    for groups, index in (("SharedFunctionalGroupsSequence", 0), ("PerFrameFunctionalGroupsSequence", frame)):
        items = ds.get(groups)
        if items and len(items) > index and sequence in items[index] and items[index][sequence]:
            value = items[index][sequence][0].get(name)
            if value is not None:
                return value
    return None


def _rescale(ds: Dataset, frame: int = 0) -> tuple[float, float] | None:
    slope = _functional(ds, "PixelValueTransformationSequence", "RescaleSlope", frame)
    intercept = _functional(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame)
    if slope is None and intercept is None:
        return None
    return (float(slope if slope is not None else 1.0), float(intercept or 0.0))


def _physical(ds: Dataset, path: Path) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    """Decoded frames ``(F, rows, cols[, 3])`` as physical values, plus photometric and rescale."""
    from pydicom.pixels import apply_color_lut

    array = _decode(ds, path)
    frames = _frames(ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        array, photometric = apply_color_lut(array, ds), "RGB"
    elif (ds.get("SamplesPerPixel") or 1) == 3:
        photometric = "RGB"  # pydicom already converted YBR to RGB
    elif photometric == "MONOCHROME1":
        bits = int(ds.get("BitsStored") or array.dtype.itemsize * 8)
        signed = np.issubdtype(array.dtype, np.signedinteger)
        array = np.invert(array) if signed else (2**bits - 1) - array
        photometric = "MONOCHROME2"
    spatial = array.shape[-3:] if photometric == "RGB" else array.shape[-2:]
    array = array.reshape((frames, *spatial))
    rescales = [_rescale(ds, f) for f in range(frames)]
    if rescales[0] is None:
        return array, photometric, None
    out = array.astype(np.float32)
    for f, (slope, intercept) in enumerate(rescales):
        out[f] = out[f] * np.float32(slope) + np.float32(intercept)
    return out, photometric, rescales[0]


def _channel_first(frames: np.ndarray, volume: bool) -> np.ndarray:
    """``(F, rows, cols[, S])`` to ``(C, rows, cols)`` (2D) or ``(C, cols, rows, F)`` (volume)."""
    if frames.ndim == 3:
        frames = frames[..., None]
    if volume:
        return np.ascontiguousarray(frames.transpose(3, 2, 1, 0))
    return np.ascontiguousarray(frames[0].transpose(2, 0, 1))


# --- geometry -----------------------------------------------------------------------------------


def _plane(ds: Dataset, frame: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Row/column direction cosines (LPS), pixel spacing (row, col) and position of one frame."""
    iop = _functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient", frame)
    # PixelSpacing, else (projection X-ray) the detector's ImagerPixelSpacing, else 1 mm
    candidates = (
        _functional(ds, "PixelMeasuresSequence", "PixelSpacing", frame),
        ds.get("ImagerPixelSpacing"),
    )
    position = _functional(ds, "PlanePositionSequence", "ImagePositionPatient", frame)
    iop = np.asarray(iop if iop is not None and len(iop) == 6 else (1, 0, 0, 0, 1, 0), dtype=np.float64)
    valid = [c for c in candidates if c is not None and len(c) == 2 and min(float(v) for v in c) > 0]
    spacing = np.asarray(valid[0] if valid else (1.0, 1.0), dtype=np.float64)
    position = None if position is None or len(position) != 3 else np.asarray(position, dtype=np.float64)
    return iop, spacing, position


def _nominal_step(ds: Dataset, count: int) -> float:
    """Frame step without per-frame positions: RT dose offsets, SpacingBetweenSlices, SliceThickness, 1."""
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is not None and len(offsets) == count > 1:
        step = float(np.median(np.diff(np.asarray(offsets, dtype=np.float64))))
        if step > 0:
            return step
    for name in ("SpacingBetweenSlices", "SliceThickness"):
        value = _functional(ds, "PixelMeasuresSequence", name)
        if value and float(value) > 0:
            return float(value)
    return 1.0


def _frame_positions(ds: Dataset, count: int) -> list[np.ndarray] | None:
    """Per-frame ImagePositionPatient of an enhanced multi-frame file, if every frame has one."""
    groups = ds.get("PerFrameFunctionalGroupsSequence")
    if not groups or len(groups) != count:
        return None
    positions = []
    for item in groups:
        plane = item.get("PlanePositionSequence")
        position = plane[0].get("ImagePositionPatient") if plane else None
        if position is None or len(position) != 3:
            return None
        positions.append(np.asarray(position, dtype=np.float64))
    return positions


def _stack(iop: np.ndarray, positions: list[np.ndarray], path: Path) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Order slices along the normal; spacing is the median gap of their projected positions. The third value is
    the sorted depths (mm along the normal) when the gaps are irregular (a missing slice), else None."""
    normal = np.cross(iop[:3], iop[3:])
    depth = np.asarray(positions) @ normal
    order = np.argsort(depth, kind="stable")
    gaps = np.diff(depth[order])
    if np.any(gaps < 1e-4):
        raise ImageReadError(
            "several slices share one ImagePositionPatient (several acquisitions or time points?); "
            "split them into separate folders",
            path,
        )
    step = float(np.median(gaps))
    irregular = bool(gaps.max() - gaps.min() > 0.01 * step + 1e-3)
    return order, step, depth[order] if irregular else None


def _tilt(iop: np.ndarray, positions, order: np.ndarray, step: float, extra: dict[str, Any]) -> np.ndarray | None:
    """The sheared slice step of a tilted-gantry stack (recorded in ``extra``), or None."""
    vector = _slice_vector(iop, positions, order, step)
    if vector is not None:
        normal = np.cross(iop[:3], iop[3:])
        cosine = abs(vector @ normal) / np.linalg.norm(vector)
        extra["gantry_tilt_degrees"] = round(float(np.degrees(np.arccos(np.clip(cosine, 0.0, 1.0)))), 2)
    return vector


def _regular_slices(stack: np.ndarray, depths: np.ndarray, step: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Slices acquired at irregular ``depths`` (a missing slice, a gap) interpolated linearly onto a regular grid
    of ``step`` from the first to the last depth, so the affine (one step) is true for every slice and distances
    and volumes in mm stay right. Returns the float32 stack and what was done (for the image's tags)."""
    count = int(round((depths[-1] - depths[0]) / step)) + 1
    targets = depths[0] + step * np.arange(count)
    upper = np.clip(np.searchsorted(depths, targets, side="left"), 1, len(depths) - 1)
    lower = upper - 1
    weight = ((targets - depths[lower]) / (depths[upper] - depths[lower])).clip(0.0, 1.0)
    shape = (count,) + (1,) * (stack.ndim - 1)
    values = stack.astype(np.float32)
    regular = values[lower] * (1 - weight).reshape(shape) + values[upper] * weight.reshape(shape)
    gaps = np.diff(depths)
    note = {
        "resampled_to_regular_step_mm": round(step, 4),
        "acquired_gaps_mm": [round(float(gaps.min()), 4), round(float(gaps.max()), 4)],
        "acquired_slices": len(depths),
        "slices": count,
    }
    return regular.astype(np.float32), note


def _affine(
    iop: np.ndarray,
    spacing: np.ndarray,
    origin: np.ndarray | None,
    step: float | None,
    slice_vector: np.ndarray | None = None,
) -> np.ndarray:
    """RAS affine for a 2D slice (rows, cols) or, with ``step``, a volume (cols, rows, slices). ``slice_vector``
    (LPS mm from one slice to the next) replaces ``normal * step`` when the slices do not lie along the normal
    (a tilted gantry): the affine is then sheared, as the acquisition is."""
    along_row, along_col = iop[:3], iop[3:]  # directions of increasing column / row index
    origin = np.zeros(3) if origin is None else origin
    if step is None:
        axes = [along_col * spacing[0], along_row * spacing[1]]
    else:
        normal = np.cross(along_row, along_col)
        third = normal * step if slice_vector is None else slice_vector
        axes = [along_row * spacing[1], along_col * spacing[0], third]
    return LPS_TO_RAS @ affine_from_axes(axes, origin)


#: Slices whose step leaves the normal by more than this angle (degrees) are a tilted-gantry acquisition.
TILT_DEGREES = 0.1


def _slice_vector(
    iop: np.ndarray, positions: Sequence[np.ndarray], order: np.ndarray, step: float
) -> np.ndarray | None:
    """The mean LPS step between consecutive slices when it is not along the slice normal (gantry tilt), else
    None. A normal step there would place every slice beside where it was acquired."""
    ordered = np.asarray(positions, dtype=np.float64)[order]
    vector = (ordered[-1] - ordered[0]) / (len(ordered) - 1)
    normal = np.cross(iop[:3], iop[3:])
    angle = np.degrees(np.arccos(np.clip(abs(vector @ normal) / max(np.linalg.norm(vector), 1e-12), 0.0, 1.0)))
    return vector if angle > TILT_DEGREES and step > 0 else None


# --- assembling ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, (MultiValue, list, tuple)):
        return [_jsonable(v) for v in value]
    for kind in (int, float):
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def safe_tags(ds: Dataset) -> dict[str, Any]:
    """The non-identifying technical attributes of :data:`SAFE_TAGS`, plus syntax and SOP class names."""
    tags: dict[str, Any] = {}
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
    if syntax:
        tags["TransferSyntax"] = syntax.name
    if ds.get("SOPClassUID"):
        tags["SOPClass"] = UID(ds.SOPClassUID).name
    for name in SAFE_TAGS:
        value = ds.get(name)
        if value is not None and value != "":
            tags[name] = _jsonable(value)
    return tags


def _image(
    array: np.ndarray,
    affine: np.ndarray,
    ds: Dataset,
    photometric: str,
    rescale: tuple[float, float] | None,
    source: Path,
    **extra: Any,
) -> MedicalImage:
    tags: dict[str, Any] = {"dicom": safe_tags(ds), **extra}  # no UIDs: they link an image to a patient's study
    if array.shape[0] == 3:
        tags["rgb_is_grey"] = channels_identical(array)
    return image_from_affine(
        array,
        affine,
        modality=str(ds.get("Modality") or "OT"),
        photometric=photometric,
        rescale=rescale,
        source=str(source),
        format="DICOM",
        tags=tags,
    )


def _read_file(path: Path, header: Dataset) -> MedicalImage:
    _check_size(header, path)
    with reading(path):
        ds = pydicom.dcmread(path)
        frames, photometric, rescale = _physical(ds, path)
    count = frames.shape[0]
    iop, spacing, origin = _plane(ds)
    extra: dict[str, Any] = {}
    if count == 1:
        return _image(
            _channel_first(frames, False), _affine(iop, spacing, origin, None), ds, photometric, rescale, path
        )
    positions = _frame_positions(ds, count)
    slice_vector = None
    if positions is not None:
        order, step, depths = _stack(iop, positions, path)
        frames, origin = frames[order], positions[order[0]]
        if depths is not None:
            frames, extra["irregular_slice_spacing"] = _regular_slices(frames, depths, step)
        else:
            slice_vector = _tilt(iop, positions, order, step, extra)
    else:
        step = _nominal_step(ds, count)
        extra["geometry"] = "no per-frame positions; frame step from header"
    array = _channel_first(frames, True)
    return _image(array, _affine(iop, spacing, origin, step, slice_vector), ds, photometric, rescale, path, **extra)


# --- series folders -----------------------------------------------------------------------------


#: Files a series folder may hold: a whole archive pointed at by mistake would otherwise be read header by header.
MAX_FOLDER_FILES = 50_000


def _scan(folder: Path) -> list[tuple[Path, Dataset]]:
    """Headers of every DICOM image file below ``folder``; other files are ignored."""
    found = []
    files = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            files.append(path)
            if len(files) > MAX_FOLDER_FILES:
                raise ImageReadError(
                    f"folder holds more than {MAX_FOLDER_FILES:,} files; point at the folder of one series", folder
                )
    for path in sorted(files):
        if path.name.upper() == "DICOMDIR" or path.stat().st_size == 0:
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM, or unreadable: not part of any series
            continue
        if "Rows" in ds and "Columns" in ds:
            found.append((path, ds))
    return found


def _series_listing(groups: dict[str, list[tuple[Path, Dataset]]]) -> str:
    return "; ".join(
        f"{uid} ({str(items[0][1].get('SeriesDescription') or 'no description')!r}, {len(items)} slices)"
        for uid, items in groups.items()
    )


def _choose_series(folder: Path, series_uid: str | None) -> list[tuple[Path, Dataset]]:
    found = _scan(folder)
    if not found:
        raise ImageReadError("folder holds no DICOM image files", folder)
    groups: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    for path, ds in found:
        groups[str(ds.get("SeriesInstanceUID", "unknown"))].append((path, ds))
    if series_uid is not None:
        if series_uid not in groups:
            raise ImageReadError(f"no series {series_uid} in folder; found: {_series_listing(groups)}", folder)
        return groups[series_uid]
    if len(groups) > 1:
        raise ImageReadError(
            f"folder holds {len(groups)} series, choose one by SeriesInstanceUID: {_series_listing(groups)}",
            folder,
        )
    return next(iter(groups.values()))


def _read_series(folder: Path, series_uid: str | None) -> MedicalImage:
    members = _choose_series(folder, series_uid)
    if len(members) == 1:
        return _read_file(*members[0])
    first = members[0][1]
    if any(_frames(ds) > 1 for _, ds in members):
        raise ImageReadError("series holds several multi-frame files; load them one by one", folder)
    if len({(ds.Rows, ds.Columns, ds.get("SamplesPerPixel") or 1) for _, ds in members}) > 1:
        raise ImageReadError("slices of the series differ in size", folder)
    _check_size(first, folder, files=len(members))

    iop, spacing, _ = _plane(first)
    positions = [_plane(ds)[2] for _, ds in members]
    extra: dict[str, Any] = {"slices": len(members)}
    depths, slice_vector = None, None
    if all(p is not None for p in positions):
        order, step, depths = _stack(iop, positions, folder)
        if depths is None:
            slice_vector = _tilt(iop, positions, order, step, extra)
    else:
        order = np.argsort([int(ds.get("InstanceNumber") or 0) for _, ds in members], kind="stable")
        step = _nominal_step(first, len(members))
        extra["geometry"] = "ImagePositionPatient missing; sorted by InstanceNumber"

    slices, rescales = [], []
    for index in order:
        path = members[index][0]
        with reading(path):
            pixels, photometric, rescale = _physical(pydicom.dcmread(path), path)
        slices.append(pixels[0])
        rescales.append(rescale)
    stack = np.stack([s.astype(np.float32) for s in slices] if any(rescales) else slices)
    if depths is not None:
        stack, extra["irregular_slice_spacing"] = _regular_slices(stack, depths, step)
    origin = positions[order[0]]
    affine = _affine(iop, spacing, origin, step, slice_vector)
    return _image(_channel_first(stack, True), affine, first, photometric, rescales[0], folder, **extra)
