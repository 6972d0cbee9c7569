"""De-identification of the non-DICOM formats: keep the pixels and the geometry, drop every other header field.

- NIfTI: the description, auxiliary file and database name fields are cleared and header extensions (which can
  hold a whole DICOM header) dropped; the affine, units, scaling and intent stay.
- PNG / JPEG / TIFF: only the pixels are written again (PNG text chunks, EXIF and XMP, TIFF descriptions and tags
  gone). JPEG is re-encoded with its own quantisation tables (``quality="keep"``), so it loses nothing further.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from medlearn.errors import MedlearnError
from medlearn.utils.atomic import atomic_path, write_bytes_atomic

NIFTI_SUFFIXES = (".nii", ".nii.gz")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def supported(path: Path) -> bool:
    return suffix_of(path) in NIFTI_SUFFIXES + PICTURE_SUFFIXES + TIFF_SUFFIXES


def deidentify_file(source: Path, target: Path) -> list[str]:
    """Write ``source`` de-identified to ``target`` (same format); returns the actions taken."""
    suffix = suffix_of(source)
    if suffix in NIFTI_SUFFIXES:
        return _nifti(source, target)
    if suffix in PICTURE_SUFFIXES:
        return _picture(source, target)
    if suffix in TIFF_SUFFIXES:
        return _tiff(source, target)
    raise MedlearnError(f"cannot de-identify {suffix} files (DICOM, NIfTI, PNG, JPEG and TIFF can be)", source)


def _nifti(source: Path, target: Path) -> list[str]:
    import nibabel as nib

    image = nib.load(str(source))
    header = image.header.copy()
    cleared = [name for name in ("descrip", "aux_file", "db_name") if name in header and _text(header[name])]
    for name in cleared:
        header[name] = b""
    extensions = len(header.extensions)
    header.extensions.clear()
    data = nib.Nifti1Image(image.dataobj, image.affine, header).to_bytes()
    write_bytes_atomic(target, gzip.compress(data, mtime=0) if suffix_of(target) == ".nii.gz" else data)
    actions = [f"cleared {', '.join(cleared)}"] if cleared else []
    return actions + ([f"dropped {extensions} header extensions"] if extensions else []) + ["kept pixels and geometry"]


def _text(value) -> bool:
    return bool(bytes(value).strip(b"\0 "))


def _picture(source: Path, target: Path) -> list[str]:
    from PIL import Image

    with Image.open(source) as image, atomic_path(target) as tmp:
        dropped = sorted(str(key) for key in image.info if key not in ("dpi", "transparency", "gamma"))
        if image.format == "JPEG":  # its own tables: no further loss; no EXIF, comment or ICC profile
            image.save(tmp, format="JPEG", quality="keep", exif=b"", comment=b"", icc_profile=None)
        else:
            clean = image.copy()
            clean.info = {key: value for key, value in image.info.items() if key in ("transparency", "gamma")}
            clean.save(tmp, format="PNG" if suffix_of(target) == ".png" else "JPEG")
    return [f"dropped {', '.join(dropped)}" if dropped else "no metadata found", "kept pixels"]


#: TIFF tags that describe rather than store the image.
DESCRIPTIVE_TIFF_TAGS = ("ImageDescription", "Artist", "Software", "DateTime", "HostComputer", "Copyright")


def _tiff(source: Path, target: Path) -> list[str]:
    import tifffile

    with tifffile.TiffFile(source) as handle:
        array = handle.asarray()
        described = [tag.name for tag in handle.pages[0].tags if tag.name in DESCRIPTIVE_TIFF_TAGS]
    with atomic_path(target) as tmp:
        tifffile.imwrite(tmp, array, metadata=None, software=None)
    return [f"dropped {', '.join(described)}" if described else "no descriptive tags found", "kept pixels"]
