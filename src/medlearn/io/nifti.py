"""NIfTI-1/2 (.nii, .nii.gz) through nibabel, whose affine is already RAS+ world millimetres.

A 4th dimension (time, echoes, vector components, co-registered modalities as in the Medical Segmentation
Decathlon) becomes the channel axis; with a single slice it is a multi-channel 2D image. Our writer stores the
modality in the header's ``descrip`` field so a round trip keeps it, and the provenance marks
(:data:`~medlearn.io.image.PROVENANCE_MARKS`: hybrid lesions, generated, enhanced), so results on such images are
always labelled as such.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from medlearn.errors import ImageReadError
from medlearn.io.geometry import image_from_affine
from medlearn.io.guards import check_voxels, reading
from medlearn.io.image import PROVENANCE_MARKS, MedicalImage, provenance_marks
from medlearn.utils.atomic import write_bytes_atomic

_MODALITY = re.compile(r"modality=(\w+)")


def read_nifti(path: Path) -> MedicalImage:
    """Header first (sizes checked), then the pixels with nibabel's scl_slope/inter applied."""
    with reading(path):
        img = nib.load(path)
        check_voxels(img.shape, path)
        if len(img.shape) > 4:
            raise ImageReadError(f"{len(img.shape)}D NIfTI {img.shape} is not supported (at most 4D)", path)
        array = np.asanyarray(img.dataobj)
        descrip = bytes(img.header.get("descrip", b"")).decode("latin-1", "replace")
    array = array.astype(array.dtype.newbyteorder("="), copy=False)
    if array.ndim == 4:
        array = np.moveaxis(array, -1, 0)
        if array.shape[3] == 1:  # several channels of one 2D image (as our writer stores them): keep it 2D
            array = array[..., 0]
    else:
        array = array[None]
    found = _MODALITY.search(descrip)
    return image_from_affine(
        np.ascontiguousarray(array),
        img.affine,
        modality=found.group(1) if found else "OT",
        source=str(path),
        format="NIfTI",
        tags={
            "nifti_version": 2 if isinstance(img, nib.Nifti2Image) else 1,
            **{mark: f" {mark}" in descrip for mark in PROVENANCE_MARKS},
        },
    )


def write_nifti(image: MedicalImage, path: Path) -> Path:
    """Write ``.nii`` or ``.nii.gz``; several channels become the 4th dimension."""
    array = image.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    if image.channels == 1:
        data = array[0]
    else:
        spatial = array.reshape(array.shape + (1,) * (4 - array.ndim))  # pad spatial to 3 axes
        data = np.moveaxis(spatial, 0, -1)
    img = nib.Nifti1Image(data, image.affine)
    img.set_qform(image.affine, code=1)
    img.set_sform(image.affine, code=1)
    img.header.set_xyzt_units("mm")
    marks = "".join(f" {mark}" for mark in provenance_marks(image.tags))  # the provenance travels with the file
    img.header["descrip"] = f"medlearn modality={image.modality}{marks}"[:79].encode()
    payload = img.to_bytes()
    if path.name.lower().endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6)
    return write_bytes_atomic(path, payload)
