"""Medical image I/O: ``load``/``save`` for DICOM, NIfTI, NRRD and raster images, plus intensity
normalisation, resampling and a privacy-safe ``describe``.

Heavy helpers (MONAI-based intensity, resampling) are imported on first use so that reading an
image does not pay for importing MONAI.
"""

from __future__ import annotations

from typing import Any

from medlearn.io.color import to_grey
from medlearn.io.describe import describe
from medlearn.io.guards import MAX_VOXELS
from medlearn.io.image import MedicalImage
from medlearn.io.loader import detect_format, load, save

__all__ = [
    "MAX_VOXELS",
    "MedicalImage",
    "describe",
    "detect_format",
    "load",
    "normalize_intensity",
    "resample_to_spacing",
    "save",
    "to_grey",
]


def __getattr__(name: str) -> Any:
    if name == "normalize_intensity":
        from medlearn.io.intensity import normalize_intensity  # on first use: loads MONAI

        return normalize_intensity
    if name == "resample_to_spacing":
        from medlearn.io.resample import resample_to_spacing  # on first use: loads scipy/torch

        return resample_to_spacing
    raise AttributeError(f"module 'medlearn.io' has no attribute {name!r}")
