"""Malformed input: every real broken file ends in an ImageReadError naming it, quickly, without
allocating what a lying header claims."""

from __future__ import annotations

import gzip
import io
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medlearn.errors import ImageReadError, NonFiniteImageError
from medlearn.io import MAX_VOXELS, load


def _fails_fast(path: Path, match: str | None = None) -> ImageReadError:
    """Load ``path`` expecting an ImageReadError naming it, in < 5 s and < 64 MB of Python memory."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ImageReadError) as caught:
            load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 64 * 2**20
    message = str(caught.value)
    assert path.name in message and "Traceback" not in message
    if match:
        assert match in message
    return caught.value


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    _fails_fast(tmp_path / "empty.png", "empty")


def test_missing_file(tmp_path: Path) -> None:
    _fails_fast(tmp_path / "nowhere.nii.gz", "no such file")


def test_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "scan.xyz").write_bytes(b"plain text, not an image\n" * 10)
    _fails_fast(tmp_path / "scan.xyz", "unknown image format")


@pytest.mark.parametrize(("suffix", "problem"), [(".dcm", "not a DICOM"), (".nii", "NIfTI"), (".png", "not an image")])
def test_random_bytes_with_an_image_suffix(tmp_path: Path, suffix: str, problem: str) -> None:
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _fails_fast(path, problem)


def test_truncated_png(tmp_path: Path) -> None:
    data = _png_bytes(np.random.default_rng(1).integers(0, 256, (128, 128), dtype=np.uint8))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _fails_fast(tmp_path / "cut.png")


def test_truncated_jpeg(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(
        buffer, format="JPEG"
    )
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:1500])
    _fails_fast(tmp_path / "cut.jpg")


@pytest.mark.parametrize("fraction", [0.5, 0.05])
def test_truncated_dicom(tmp_path: Path, fraction: float) -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: int(len(data) * fraction)])
    _fails_fast(path)


def test_png_header_claiming_ten_billion_pixels(tmp_path: Path) -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + _chunk(b"IEND", b"")
    )
    (tmp_path / "bomb.png").write_bytes(data)
    _fails_fast(tmp_path / "bomb.png", "header claims")


def _tiny_nifti(array: np.ndarray) -> bytearray:
    return bytearray(nib.Nifti1Image(array, np.eye(4)).to_bytes())


def test_nifti_header_claiming_huge_dims(tmp_path: Path) -> None:
    data = _tiny_nifti(np.zeros((2, 2, 2), dtype=np.int16))
    struct.pack_into("<8h", data, 40, 3, 30000, 30000, 30000, 1, 1, 1, 1)  # dim[0..7]
    (tmp_path / "huge.nii").write_bytes(bytes(data))
    error = _fails_fast(tmp_path / "huge.nii", "header claims")
    assert str(30000**3) in str(error) and str(MAX_VOXELS) in str(error)


def test_truncated_gzipped_nifti(tmp_path: Path) -> None:
    noise = np.random.default_rng(3).normal(size=(24, 24, 24)).astype(np.float32)
    blob = gzip.compress(bytes(_tiny_nifti(noise)))
    (tmp_path / "cut.nii.gz").write_bytes(blob[: len(blob) // 2])
    _fails_fast(tmp_path / "cut.nii.gz")


def test_nan_in_float_nifti(tmp_path: Path) -> None:
    array = np.ones((8, 8, 8), dtype=np.float32)
    array[0, 0, :3] = np.nan
    array[1, 1, 1] = np.inf
    (tmp_path / "nan.nii").write_bytes(bytes(_tiny_nifti(array)))
    with pytest.raises(NonFiniteImageError) as caught:
        load(tmp_path / "nan.nii")
    assert "nan.nii" in str(caught.value) and "4 of 512" in str(caught.value)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda ds: setattr(ds, "Rows", 0),
        lambda ds: delattr(ds, "PixelData"),
    ],
    ids=["zero-rows", "no-pixel-data"],
)
def test_dicom_with_inconsistent_pixel_attributes(tmp_path: Path, corrupt: Callable) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    corrupt(ds)
    ds.save_as(tmp_path / "bad.dcm")
    _fails_fast(tmp_path / "bad.dcm")


def test_a_bug_in_medlearn_is_not_reported_as_an_unreadable_file(tmp_path: Path) -> None:
    """Only the reading libraries' complaints about a file become ImageReadError; a medlearn bug propagates."""
    import json

    from medlearn.io.guards import reading
    from medlearn.io.intensity import window_bounds

    with pytest.raises(ValueError), reading(tmp_path / "a.png"):
        window_bounds(("forty", 400))  # a ValueError raised in medlearn's own code (as a bug would be)
    with pytest.raises(ImageReadError, match="a.png"), reading(tmp_path / "a.png"):
        json.loads("{not json")  # raised inside a library: a problem of the file
