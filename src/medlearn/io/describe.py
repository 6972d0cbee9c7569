"""A JSON-ready summary of an image for ``medlearn info`` and logs, without identifying data.

Only whitelisted technical DICOM attributes are reported (never names, IDs, UIDs, dates,
accession numbers or institutions), so the output can be pasted into a bug report or a paper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlearn.io.geometry import orientation_code
from medlearn.io.image import MedicalImage, provenance_marks

_REPORTED_TAGS = ("rgb_is_grey", "slices", "irregular_slice_spacing", "geometry", "converted_from")
_DICOM_KEYS = ("TransferSyntax", "SOPClass")


def _num(value: float) -> float:
    return float(f"{float(value):.6g}")


def describe(image: MedicalImage) -> dict[str, Any]:
    """Shape, dtype, geometry, orientation, value range and safe acquisition tags of ``image``."""
    array = image.array
    values = array.astype(np.float64, copy=False) if array.dtype == bool else array
    summary: dict[str, Any] = {
        "source": image.source,
        "format": image.format,
        "modality": image.modality,
        "photometric": image.photometric,
        "shape": list(array.shape),
        "channels": image.channels,
        "spatial_shape": list(image.spatial_shape),
        "dtype": str(array.dtype),
        "spacing": [_num(s) for s in image.spacing],
        "origin": [_num(o) for o in image.origin],
        "orientation": orientation_code(image.affine, image.spatial_ndim),
        "value_range": {
            "min": _num(values.min()),
            "max": _num(values.max()),
            "mean": _num(values.mean(dtype=np.float64)),
        },
        "rescale": None if image.rescale is None else {"slope": image.rescale[0], "intercept": image.rescale[1]},
    }
    summary.update({key: image.tags[key] for key in _REPORTED_TAGS if key in image.tags})
    marks = provenance_marks(image.tags)
    if marks:  # hybrid lesions, generated or enhanced: say so wherever the image is described
        summary["provenance"] = ", ".join(marks)
    dicom = image.tags.get("dicom")
    if dicom:
        from medlearn.io.dicom import SAFE_TAGS  # only for DICOM: describing a PNG or NIfTI need not load pydicom

        allowed = set(SAFE_TAGS) | set(_DICOM_KEYS)
        summary["dicom"] = {key: value for key, value in dicom.items() if key in allowed}
    return summary
