"""Write a predicted label mask as a DICOM Segmentation (SEG) of the image it was predicted on.

Why DICOM SEG rather than a NIfTI mask: a SEG references the original series instance by
instance, shares its frame of reference, patient and study, so a PACS or viewer (OHIF, 3D Slicer,
Horos) files it next to the source and overlays it slice by slice on the original images, with
named segments and the algorithm that produced them recorded in the object.

The mask is given in exactly the spatial array order :func:`medlearn.io.load` returns for the
source (series: columns, rows, slices sorted along the slice normal; single frame: rows, cols), so
a prediction on a loaded image can be written back without any reordering by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

import medlearn
from medlearn.errors import MedlearnError
from medlearn.io.dicom import _choose_series, _frame_positions, _frames, _plane, _read_header, _stack
from medlearn.io.guards import check_path
from medlearn.io.loader import detect_format
from medlearn.utils.atomic import atomic_path

_Source = tuple[list[Dataset], tuple[int, ...], Callable[[np.ndarray], np.ndarray]]
"""Source headers in SEG frame order, the loader's spatial shape, and mask -> ``(frames, rows, cols)``."""


def write_dicom_seg(
    mask: np.ndarray,
    source: str | Path,
    path: str | Path,
    *,
    labels: Mapping[int, str] | None = None,
    algorithm: str = "medlearn",
    algorithm_version: str = medlearn.__version__,
    series_description: str = "medlearn segmentation",
    series_uid: str | None = None,
) -> Path:
    """Write ``mask`` as a BINARY DICOM SEG of ``source`` (a DICOM series folder or file) to ``path``.

    ``mask`` holds integer labels in the spatial order ``medlearn.io.load(source)`` returns (a
    leading channel axis of size 1 is accepted); 0 is background. Every other label present, or
    named in ``labels``, becomes one segment, numbered 1, 2, ... in sorted label order and named
    ``labels[label]`` (default ``"label N"``). ``series_uid`` chooses the series in a folder holding
    several, as in :func:`medlearn.io.load`. Returns ``path``.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    source, path = Path(source), Path(path)
    datasets, expected, to_frames = _source(source, series_uid)
    mask = np.asarray(mask)
    if mask.ndim == len(expected) + 1 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != expected:
        raise MedlearnError(
            f"mask shape {mask.shape} does not match the source's spatial shape {expected} "
            "(the array order medlearn.io.load returns, without a channel axis)",
            source,
        )
    values = _label_values(mask, labels, path)
    segment_numbers = {label: number for number, label in enumerate(values, start=1)}

    numbers = np.searchsorted(np.asarray(values), mask.astype(np.int64)) + 1  # label -> segment number
    frames = to_frames(np.where(mask != 0, numbers, 0).astype(np.uint8 if len(values) < 256 else np.uint16))

    names = dict(labels or {})
    try:  # highdicom refuses sources it cannot reference and over-long names; say why in one line
        algorithm_id = hd.AlgorithmIdentificationSequence(
            name=algorithm, version=str(algorithm_version), family=codes.cid7162.ArtificialIntelligence
        )
        descriptions = [
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=str(names.get(label, f"label {label}")),
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Tissue,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm_id,
            )
            for label, number in segment_numbers.items()
        ]
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=int(datasets[0].get("SeriesNumber") or 0) + 1000,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="medlearn",
            manufacturer_model_name=algorithm,
            software_versions=f"medlearn {medlearn.__version__}",
            device_serial_number="0",
            series_description=series_description,
        )
    except Exception as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise MedlearnError(f"cannot build a DICOM SEG of this source: {detail}", source) from error
    with atomic_path(path) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return path


def _label_values(mask: np.ndarray, labels: Mapping[int, str] | None, path: Path) -> list[int]:
    """Sorted non-zero labels present in ``mask`` or named in ``labels``; refuses anything else."""
    if mask.dtype == bool:
        present = {1} if mask.any() else set()
    elif np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating):
        found = np.unique(mask)
        if np.issubdtype(mask.dtype, np.floating) and not np.all(np.isfinite(found) & (found == np.round(found))):
            odd = [float(v) for v in found[~(np.isfinite(found) & (found == np.round(found)))][:5]]
            raise MedlearnError(f"mask labels must be integers, found {odd}", path)
        if found.size and found[0] < 0:
            raise MedlearnError(
                f"mask labels must not be negative, found {[int(v) for v in found[found < 0][:5]]}", path
            )
        present = {int(v) for v in found if v != 0}
    else:
        raise MedlearnError(f"mask must hold integer labels, not {mask.dtype}", path)
    named = set()
    for key in labels or {}:
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) or key <= 0:
            raise MedlearnError(f"segment labels must be positive integers (0 is background), got {key!r}", path)
        named.add(int(key))
    values = sorted(present | named)
    if not values:
        raise MedlearnError("mask is empty (only background 0) and no labels were given: nothing to segment", path)
    if len(values) > 65535:
        raise MedlearnError(f"mask holds {len(values)} labels, more than a SEG can number", path)
    return values


def _source(source: Path, series_uid: str | None) -> _Source:
    """Headers of the source image(s) in SEG frame order, the loader's spatial shape, and the mask transpose."""
    check_path(source)
    kind = detect_format(source)
    if kind != "dicom":
        raise MedlearnError(f"a DICOM SEG needs a DICOM source (series folder or file), not {kind.upper()}", source)
    if source.is_dir():
        members = _choose_series(source, series_uid)
        if len(members) > 1:
            return _series(source, members)
        file, header = members[0]
    else:
        file, header = source, _read_header(source)
        if series_uid and header.get("SeriesInstanceUID") != series_uid:
            raise MedlearnError(f"file belongs to series {header.get('SeriesInstanceUID')}, not {series_uid}", file)
    return _single(file, header)


def _series(folder: Path, members: list[tuple[Path, Dataset]]) -> _Source:
    """Single-frame slices sorted as ``_read_series`` sorts them; mask ``(cols, rows, slices)``."""
    first = members[0][1]
    if any(_frames(ds) > 1 for _, ds in members):
        raise MedlearnError("series holds several multi-frame files; write a SEG per file", folder)
    if len({(ds.Rows, ds.Columns) for _, ds in members}) > 1:
        raise MedlearnError("slices of the series differ in size", folder)
    iop = _plane(first)[0]
    positions = [_plane(ds)[2] for _, ds in members]
    if all(p is not None for p in positions):
        order = _stack(iop, positions, folder)[0]
    else:
        order = np.argsort([int(ds.get("InstanceNumber") or 0) for _, ds in members], kind="stable")
    datasets = [members[i][1] for i in order]
    shape = (int(first.Columns), int(first.Rows), len(members))
    return datasets, shape, lambda mask: np.ascontiguousarray(mask.transpose(2, 1, 0))


def _single(file: Path, header: Dataset) -> _Source:
    """One file: 2D ``(rows, cols)``, or multi-frame ``(cols, rows, frames)`` sorted like ``_read_file``."""
    ds = header  # the loader's header read: no pixel data needed, highdicom only references the source
    rows, cols, count = int(ds.Rows), int(ds.Columns), _frames(ds)
    if count == 1:
        return [ds], (rows, cols), lambda mask: np.ascontiguousarray(mask[None])
    positions = _frame_positions(ds, count)
    order = np.arange(count) if positions is None else _stack(_plane(ds)[0], positions, file)[0]

    def to_frames(mask: np.ndarray) -> np.ndarray:
        frames = np.empty((count, rows, cols), dtype=mask.dtype)
        frames[order] = mask.transpose(2, 1, 0)  # loaded frame k is file frame order[k]
        return frames

    return [ds], (cols, rows, count), to_frames
