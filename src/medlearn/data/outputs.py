"""Where a predict/apply command writes the result for each input: in the input's own format where medlearn
can write it, under a name no other input of the same call can take.

Two inputs ``a/x.nii.gz`` and ``b/x.nii.gz`` would both become ``x_mask.nii.gz``; the second would silently
replace the first. :func:`distinct_stems` prefixes colliding stems with as much of their parent folders as it
takes to tell them apart.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn.data.files import IMAGE_SUFFIXES
from medlearn.io.image import MedicalImage
from medlearn.utils.atomic import atomic_path

FORMAT_DICOM, FORMAT_NIFTI, FORMAT_NRRD = "DICOM", "NIfTI", "NRRD"
#: Output suffix per input format that medlearn writes as it was read (rasters are decided by their pixels).
SAME_FORMAT = {FORMAT_NIFTI: ".nii.gz", FORMAT_NRRD: ".nrrd", FORMAT_DICOM: ".nii.gz"}


def stem_of(path: Path) -> str:
    """The file name without its image suffix (``scan.nii.gz`` -> ``scan``; a DICOM folder: its name)."""
    name = Path(path).name
    suffix = next((s for s in sorted(IMAGE_SUFFIXES, key=len, reverse=True) if name.lower().endswith(s)), "")
    return name[: len(name) - len(suffix)] if suffix else name


def output_suffix(path: Path, image: MedicalImage) -> str:
    """The input's own format where medlearn writes it (NIfTI, NRRD; a .nii stays .nii), a PNG for 2D 8/16-bit
    raster images, NIfTI for everything else (DICOM, JPEG/TIFF volumes, float rasters): geometry is kept."""
    name = Path(path).name.lower()
    if image.format == FORMAT_NIFTI and name.endswith(".nii"):
        return ".nii"
    if image.format in SAME_FORMAT:
        return SAME_FORMAT[image.format]
    if Path(path).is_dir():
        return ".nii.gz"
    fits_png = image.spatial_ndim == 2 and image.array.dtype in (np.uint8, np.uint16)
    return ".png" if fits_png else ".nii.gz"


def distinct_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """A stem per input path, unique within ``paths``: colliding stems get their parent folders' names in front
    (``a__x``, ``b__x``), and a counter if even the whole paths share their names."""
    resolved = [Path(p) for p in paths]
    stems = {path: stem_of(path) for path in resolved}
    depth = 1
    while True:
        counts: dict[str, int] = {}
        for stem in stems.values():
            counts[stem] = counts.get(stem, 0) + 1
        clashing = [path for path in resolved if counts[stems[path]] > 1]
        if not clashing:
            return stems
        parents = {path: path.absolute().parts[-1 - depth : -1] for path in clashing}
        if depth > max(len(path.absolute().parts) for path in clashing):
            for index, path in enumerate(clashing, start=1):
                stems[path] = f"{stem_of(path)}__{index}"
            return stems
        for path in clashing:
            stems[path] = "__".join([*parents[path], stem_of(path)])
        depth += 1


def write_table(path: Path, rows: Sequence[dict]) -> Path:
    """The rows (one per input) as a CSV whose columns are every key seen, in first-seen order, written atomically."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
