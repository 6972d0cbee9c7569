"""``load`` and ``save``: one entry point for every format, chosen by content first, then suffix.

Sniffing the magic bytes means a PNG named ``.dcm`` still reads, while the suffix decides for
formats without a reliable signature (gzipped NIfTI, DICOM without preamble).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from medlearn.errors import ImageReadError, MedlearnError
from medlearn.io.guards import check_finite, check_path, reading
from medlearn.io.image import MedicalImage

SUFFIXES = {
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".ima": "dicom",
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".png": "pillow",
    ".jpg": "pillow",
    ".jpeg": "pillow",
    ".bmp": "pillow",
    ".tif": "tiff",
    ".tiff": "tiff",
}

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "pillow"),
    (b"\xff\xd8\xff", "pillow"),
    (b"NRRD", "nrrd"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def detect_format(path: Path) -> str:
    """``"dicom"``, ``"nifti"``, ``"nrrd"``, ``"pillow"`` or ``"tiff"``, from content then suffix."""
    if path.is_dir():
        return "dicom"
    with reading(path), path.open("rb") as handle:
        head = handle.read(352)
    if head[128:132] == b"DICM":
        return "dicom"
    if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] == b"n+2\x00":
        return "nifti"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"BM") and _suffix(path) == ".bmp":
        return "pillow"
    kind = SUFFIXES.get(_suffix(path))
    if kind is None:
        known = ", ".join(sorted(SUFFIXES))
        raise ImageReadError(
            f"unknown image format (suffix {_suffix(path) or 'none'!r}, content not recognised); "
            f"supported: {known} or a DICOM folder",
            path,
        )
    return kind


def _reader(kind: str, series_uid: str | None) -> Callable[[Path], MedicalImage]:
    if kind == "dicom":
        from medlearn.io.dicom import read_dicom  # each format's library loads only when used

        return lambda path: read_dicom(path, series_uid)
    if kind == "nifti":
        from medlearn.io.nifti import read_nifti  # each format's library loads only when used

        return read_nifti
    if kind == "nrrd":
        from medlearn.io.nrrd import read_nrrd  # each format's library loads only when used

        return read_nrrd
    from medlearn.io.raster import read_raster  # each format's library loads only when used

    return lambda path: read_raster(path, kind)


def load(path: str | Path, *, series_uid: str | None = None, modality: str | None = None) -> MedicalImage:
    """Read a medical image (DICOM file or series folder, NIfTI, NRRD, PNG/JPEG/BMP/TIFF).

    Raises :class:`ImageReadError` (naming the file) for anything unreadable, and
    :class:`NonFiniteImageError` for NaN/inf pixels. ``modality`` overrides what the file says.
    """
    path = Path(path)
    check_path(path)
    kind = detect_format(path)
    if series_uid is not None and kind != "dicom":
        raise MedlearnError("a series UID can only be chosen for DICOM input", path)
    with reading(path):
        image = _reader(kind, series_uid)(path)
    check_finite(image.array, path)
    if modality:
        image = dataclasses.replace(image, modality=modality.upper())
    return image


def save(image: MedicalImage, path: str | Path) -> Path:
    """Write ``.nii``/``.nii.gz``, ``.nrrd`` or ``.png`` atomically, keeping affine and modality."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix in (".nii", ".nii.gz"):
        from medlearn.io.nifti import write_nifti  # each format's library loads only when used

        return write_nifti(image, path)
    if suffix == ".nrrd":
        from medlearn.io.nrrd import write_nrrd  # each format's library loads only when used

        return write_nrrd(image, path)
    if suffix == ".png":
        from medlearn.io.raster import write_png  # each format's library loads only when used

        return write_png(image, path)
    raise MedlearnError(f"cannot save as {suffix or 'no suffix'!r}; use .nii, .nii.gz, .nrrd or .png", path)
