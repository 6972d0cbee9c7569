"""Checks every reader runs, so a bad file ends in one clear :class:`ImageReadError`.

Sizes are checked from headers *before* pixels are decoded (a 40-byte header can claim
terabytes), and every exception a decoding library raises is translated into a one-line
problem naming the file: ``load`` never lets a library traceback reach the user.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from medlearn.errors import ImageReadError, MedlearnError, NonFiniteImageError

MAX_VOXELS = 2**30
"""Largest image (voxels x channels) a header may claim; about 4 GB as float32."""


def check_path(path: Path) -> None:
    """Fail early on a missing path or an empty file, before any library sees it."""
    if not path.exists():
        raise ImageReadError("no such file or folder", path)
    if path.is_file() and path.stat().st_size == 0:
        raise ImageReadError("file is empty (0 bytes)", path)


def check_voxels(shape: Sequence[int], path: str | Path) -> None:
    """Reject a header whose dimensions are negative or multiply to more than :data:`MAX_VOXELS`."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise ImageReadError(f"header claims negative dimensions {tuple(dims)}", path)
    voxels = math.prod(dims)
    if voxels > MAX_VOXELS:
        raise ImageReadError(
            f"header claims {voxels} voxels {tuple(dims)}, more than the limit of {MAX_VOXELS}; "
            "the file is corrupt or too large to load",
            path,
        )


def check_finite(array: np.ndarray, path: str | Path) -> None:
    """Refuse NaN/inf pixels: a model would silently turn them into NaN losses."""
    if np.issubdtype(array.dtype, np.inexact):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise NonFiniteImageError(f"{bad} of {array.size} pixel values are not finite (NaN or infinite)", path)


def _problem(error: Exception) -> str:
    """A short, library-independent description of why decoding failed."""
    from nibabel.filebasedimages import ImageFileError
    from PIL import Image, UnidentifiedImageError
    from pydicom.errors import InvalidDicomError

    detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    if isinstance(error, InvalidDicomError):
        return "not a DICOM file (no 'DICM' marker after the 128-byte preamble)"
    if isinstance(error, Image.DecompressionBombError):
        return f"header claims too many pixels ({detail})"
    if isinstance(error, UnidentifiedImageError):
        return "not an image file (no reader recognises its content)"
    if isinstance(error, ImageFileError):
        return f"not a readable NIfTI file ({detail})"
    if isinstance(error, (zlib.error, gzip.BadGzipFile, EOFError)):
        return f"truncated or corrupt compressed data ({detail})"
    if isinstance(error, struct.error):
        return f"truncated or malformed header ({detail})"
    if isinstance(error, (OSError, ValueError)):
        return f"corrupt, truncated or inconsistent image data ({type(error).__name__}: {detail})"
    if isinstance(error, MemoryError):
        return "not enough memory to decode the pixels"
    return f"cannot read image: {type(error).__name__}: {detail}"


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn an exception that a reading library (pydicom, nibabel, Pillow, tifffile, pynrrd, numpy) raised about
    the file inside the block into an :class:`ImageReadError` naming it. An exception raised by medlearn's own
    code is a bug, not a bad file: it propagates, so it is never reported as "N images skipped"."""
    try:
        yield
    except MedlearnError:
        raise
    except Exception as error:
        if raised_by_medlearn(error):
            raise
        raise ImageReadError(_problem(error), path) from error


_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def raised_by_medlearn(error: BaseException) -> bool:
    """True when the innermost frame of ``error``'s traceback is in medlearn's own source."""
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return Path(traceback.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE_ROOT)
