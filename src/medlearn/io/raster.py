"""Raster images (PNG, JPEG, BMP through Pillow; TIFF through tifffile, which keeps 16-bit and
multi-sample data intact). They carry no patient geometry: spacing 1 and an identity affine,
unless the PNG was written by medlearn, which stores the affine and modality in a text chunk.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from medlearn.errors import ImageReadError, MedlearnError
from medlearn.io.color import channels_identical
from medlearn.io.geometry import image_from_affine
from medlearn.io.guards import check_voxels, reading
from medlearn.io.image import PROVENANCE_MARKS, MedicalImage, provenance_marks
from medlearn.utils.atomic import write_bytes_atomic

PNG_META_KEY = "medlearn"
_TO_RGB = {"P", "PA", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def _read_pillow(path: Path) -> tuple[np.ndarray, dict]:
    """Channel-first pixels and any medlearn metadata; the header size is checked before decoding."""
    with reading(path), Image.open(path) as im:
        check_voxels((*im.size, len(im.getbands())), path)
        im.load()
        meta = json.loads(im.text[PNG_META_KEY]) if PNG_META_KEY in getattr(im, "text", {}) else {}
        meta["format"] = im.format
        converted = im.convert("RGB") if im.mode in _TO_RGB else im
        converted = converted.convert("L") if converted.mode in {"1", "LA"} else converted
        array = np.asarray(converted)
        if converted.mode != im.mode:
            meta.setdefault("converted_from", im.mode)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return array, meta


def _read_tiff(path: Path) -> np.ndarray:
    """Channel-first pixels of the first TIFF series; samples (S) or channels (C) lead."""
    with reading(path), tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        check_voxels(series.shape, path)
        array, axes = series.asarray(), series.axes
    keep = [i for i, (axis, n) in enumerate(zip(axes, array.shape, strict=True)) if n > 1 or axis in "YX"]
    array, axes = array.reshape([array.shape[i] for i in keep]), "".join(axes[i] for i in keep)
    channel = next((i for i, axis in enumerate(axes) if axis in "SC"), None)
    array = array[None] if channel is None else np.moveaxis(array, channel, 0)
    if array.ndim - 1 > 3:
        raise ImageReadError(f"TIFF with axes {axes!r} {array.shape} is not supported (at most 3 spatial)", path)
    return array


def read_raster(path: Path, kind: str) -> MedicalImage:
    """Read a PNG/JPEG/BMP (``kind="pillow"``) or TIFF (``kind="tiff"``) image."""
    array, meta = (_read_tiff(path), {}) if kind == "tiff" else _read_pillow(path)
    array = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False))
    affine = np.asarray(meta["affine"], dtype=float) if "affine" in meta else np.eye(4)
    tags: dict = {"converted_from": meta["converted_from"]} if "converted_from" in meta else {}
    if "affine" not in meta:
        tags["spacing_unknown"] = True  # a plain raster records no pixel size: 1 per pixel, not millimetres
    tags.update({mark: True for mark in meta.get("marks", []) if mark in PROVENANCE_MARKS})
    if array.shape[0] == 3:
        tags["rgb_is_grey"] = channels_identical(array)
    return image_from_affine(
        array,
        affine,
        modality=str(meta.get("modality", "OT")),
        photometric="RGB" if array.shape[0] == 3 else "MONOCHROME2",
        source=str(path),
        format="TIFF" if kind == "tiff" else str(meta.get("format") or "raster"),
        tags=tags,
    )


def _png_pixels(image: MedicalImage, path: Path) -> np.ndarray:
    """8-bit grey/RGB or 16-bit grey pixels; other integer types are narrowed only when lossless."""
    array = image.array
    if image.spatial_ndim != 2 or image.channels not in (1, 3):
        raise MedlearnError(f"PNG holds 2D grey or RGB images, not shape {array.shape}", path)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype not in (np.uint8, np.uint16):
        if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 65535:
            raise MedlearnError(f"PNG stores 8/16-bit unsigned integers; scale this {array.dtype} image first", path)
        array = array.astype(np.uint8 if array.max() <= 255 else np.uint16)
    if image.channels == 3 and array.dtype != np.uint8:
        raise MedlearnError("RGB PNG is written 8-bit only; convert the image to uint8 first", path)
    return array[0] if image.channels == 1 else array.transpose(1, 2, 0)


def write_png(image: MedicalImage, path: Path) -> Path:
    """Write a PNG, keeping the affine, modality and provenance marks in a ``medlearn`` text chunk."""
    pixels = _png_pixels(image, path)
    meta = {"affine": image.affine.tolist(), "modality": image.modality, "marks": provenance_marks(image.tags)}
    info = PngInfo()
    info.add_text(PNG_META_KEY, json.dumps(meta))
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", pnginfo=info)
    return write_bytes_atomic(path, buffer.getvalue())
