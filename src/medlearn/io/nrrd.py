"""NRRD (.nrrd, .nhdr) through pynrrd: ``space directions`` and ``space origin`` give the affine,
converted to RAS from whatever ``space`` the file declares (3D Slicer writes LPS)."""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np

from medlearn.errors import ImageReadError, MedlearnError
from medlearn.io.geometry import LPS_TO_RAS, affine_from_axes, image_from_affine
from medlearn.io.guards import check_voxels, reading
from medlearn.io.image import MedicalImage
from medlearn.utils.atomic import atomic_path

SPACE_TO_RAS = {
    "right-anterior-superior": (1, 1, 1),
    "left-anterior-superior": (-1, 1, 1),
    "left-posterior-superior": (-1, -1, 1),
    "right-posterior-superior": (1, -1, 1),
    "scanner-xyz": (1, 1, 1),
    "3d-right-handed": (1, 1, 1),
}
"""Sign flips taking each NRRD world space to RAS+ (abbreviations are expanded by pynrrd)."""

_CHANNEL_KINDS = {"rgb-color", "rgba-color", "vector", "covariant-vector", "list", "point", "complex"}


def _is_channel_axis(header: dict, axis: int) -> bool:
    kinds = header.get("kinds") or []
    if axis < len(kinds) and str(kinds[axis]).lower() in _CHANNEL_KINDS:
        return True
    directions = header.get("space directions")
    return directions is not None and np.isnan(np.asarray(directions[axis], dtype=float)).any()


def read_nrrd(path: Path) -> MedicalImage:
    """Header first (sizes checked), then the data in NRRD's own axis order (x fastest first)."""
    with reading(path):
        header = nrrd.read_header(str(path))
        sizes = [int(s) for s in header["sizes"]]
        check_voxels(sizes, path)
        data, header = nrrd.read(str(path), index_order="F")
    channel_axes = [a for a in range(data.ndim) if _is_channel_axis(header, a)]
    if len(channel_axes) > 1 or data.ndim - len(channel_axes) > 3:
        raise ImageReadError(f"NRRD with axes {header.get('kinds')} is not supported", path)
    array = np.moveaxis(data, channel_axes[0], 0) if channel_axes else data[None]
    spatial = [a for a in range(data.ndim) if a not in channel_axes]

    space = str(header.get("space", "right-anterior-superior")).lower()
    flips = np.array(SPACE_TO_RAS.get(space, (1, 1, 1)), dtype=float)
    if "space directions" in header:
        directions = np.asarray(header["space directions"], dtype=float)
        axes = [directions[a] * flips[: directions.shape[1]] for a in spatial]
    else:
        spacings = header.get("spacings")
        steps = [float(spacings[a]) if spacings is not None and np.isfinite(spacings[a]) else 1.0 for a in spatial]
        axes = [np.eye(3)[i] * s for i, s in enumerate(steps)]
    axes = [np.pad(a, (0, 3 - len(a))) for a in axes]
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    origin = np.pad(origin, (0, 3 - len(origin))) * flips
    return image_from_affine(
        np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False)),
        affine_from_axes(axes, origin),
        modality=str(header.get("modality", "OT")),
        source=str(path),
        format="NRRD",
        tags={"nrrd_space": space},
    )


def write_nrrd(image: MedicalImage, path: Path) -> Path:
    """Write an attached, gzip-compressed NRRD in LPS (what 3D Slicer and ITK expect)."""
    if path.suffix.lower() != ".nrrd":
        raise MedlearnError("medlearn writes attached .nrrd files only (not detached .nhdr)", path)
    lps = LPS_TO_RAS @ image.affine
    ndim = image.spatial_ndim
    directions = [lps[:3, i] for i in range(ndim)]
    kinds = ["domain"] * ndim
    data = image.array[0] if image.channels == 1 else image.array
    if image.channels > 1:
        directions = [np.full(3, np.nan), *directions]
        kinds = ["RGB-color" if image.photometric == "RGB" and image.channels == 3 else "vector", *kinds]
    header = {
        "space": "left-posterior-superior",
        "space directions": np.array(directions),
        "space origin": lps[:3, 3],
        "kinds": kinds,
        "encoding": "gzip",
        "modality": image.modality,
    }
    with atomic_path(path) as tmp:
        nrrd.write(str(tmp), np.asarray(data), header, index_order="F")
    return path
