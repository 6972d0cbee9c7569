"""``medlearn register pair``: one fixed and one moving image registered, and everything a user takes elsewhere.

Writes into the output folder: ``warped.*`` (the moving image on the fixed grid, in the moving image's format),
``displacement.nii.gz`` (on the fixed grid, mm along the RAS world axes: the fixed voxel at world ``x`` takes the
moving image's value at ``x + u(x)``, medlearn.io.warp's convention), ``jacobian.nii.gz`` (the determinant of the
mapping's Jacobian per fixed voxel: below 1 compressed, above 1 expanded, <= 0 folded), ``transform.h5`` (the same
mapping as an ITK transform: 3D Slicer, ANTs and SimpleITK apply it), ``points.csv`` (``--points``: each fixed-image
point mapped into the moving image, same columns), ``warped_labels.*`` (``--labels``, nearest neighbour),
``metrics.json`` (similarity before/after, label Dice with ``--fixed-labels``, Jacobian folding and SD of log-
Jacobian, seconds) and ``overlay.png`` (fixed, moving and warped middle slices, a fixed/warped checkerboard and the
Jacobian map).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medlearn.apps.registration.classical import Registerer
from medlearn.apps.registration.figures import overlay_png
from medlearn.data.deformation import jacobian_determinant
from medlearn.data.outputs import output_suffix
from medlearn.errors import MedlearnError
from medlearn.evaluation.registration import label_dice, ncc, nmi, regularity
from medlearn.io import load, save
from medlearn.io.geometry import check_same_geometry, image_from_affine
from medlearn.io.image import MedicalImage
from medlearn.io.itk import displacement_field, resample_like, transform_points
from medlearn.io.markups import PointSet, read_points_csv
from medlearn.io.warp import resample_to_reference
from medlearn.utils.atomic import write_bytes_atomic, write_csv_atomic, write_text_atomic


@dataclass
class PairRequest:
    fixed: Path
    moving: Path
    out: Path
    registerer: Registerer
    points: Path | None = None
    labels: Path | None = None
    fixed_labels: Path | None = None
    fixed_mask: Path | None = None


def register_pair(request: PairRequest) -> dict:
    """Register, write the outputs, return the metrics (also in ``metrics.json``)."""
    fixed, moving = load(request.fixed), load(request.moving)
    mask = _mask(request.fixed_mask, fixed)
    points = read_points_csv(request.points) if request.points is not None else None
    if points is not None:
        _check_points(points, fixed, request.points)
    result = request.registerer(fixed, moving, mask)
    out = Path(request.out)
    warped = resample_like(moving, fixed, result.transform)
    before = resample_to_reference(moving, fixed)
    field = displacement_field(result.transform, fixed)
    determinant = jacobian_determinant(field)
    jacobian = image_from_affine(determinant[None].astype(np.float32), fixed.affine)
    overlap = resample_like(_ones(moving), fixed, result.transform).array[0] > 0.5
    if not overlap.any():
        raise MedlearnError(
            f"after {result.method} registration the moving image covers none of the fixed image: the registration "
            "failed (check the images' positions, or try --method rigid); nothing was written",
            request.moving,
        )
    metrics = {
        "method": result.method,
        "seconds": round(result.seconds, 3),
        "fixed": str(request.fixed),
        "moving": str(request.moving),
        "identity": _similarity(fixed, before, resample_to_reference(_ones(moving), fixed).array[0] > 0.5),
        "registered": _similarity(fixed, warped, overlap),
        **regularity(determinant),
    }
    if metrics["registered"]["nmi"] < metrics["identity"]["nmi"]:
        metrics["warning"] = (
            "the registered images are LESS similar (NMI) than before registration: the optimisation went astray; "
            "check the result before using it, or try another method"
        )
    save(_like_input(warped, moving), out / f"warped{output_suffix(request.moving, moving)}")
    save(field, out / "displacement.nii.gz")
    save(jacobian, out / "jacobian.nii.gz")
    _write_transform(result.transform, out / "transform.h5")
    if request.labels is not None:
        labels = load(request.labels)
        check_same_geometry(moving, labels)
        warped_labels = resample_like(labels, fixed, result.transform, labels=True)
        save(warped_labels, out / f"warped_labels{output_suffix(request.labels, labels)}")
        if request.fixed_labels is not None:
            truth = load(request.fixed_labels)
            check_same_geometry(fixed, truth)
            metrics["dice"] = label_dice(np.rint(truth.array[0]), np.rint(warped_labels.array[0]))
            metrics["dice_identity"] = label_dice(
                np.rint(truth.array[0]), np.rint(resample_to_reference(labels, fixed, order=0).array[0])
            )
    if points is not None:
        mapped = transform_points(result.transform, _world3(points), plane=fixed)
        axes = ("x", "y", "z")[: points.coordinates.shape[1]]
        rows = [
            {"label": label or name, **dict(zip(axes, np.round(p[: len(axes)], 4), strict=True))}
            for label, name, p in zip(points.labels, points.names, mapped, strict=True)
        ]
        write_csv_atomic(out / "points.csv", ["label", *axes], rows)
        metrics["points"] = len(rows)
    write_bytes_atomic(out / "overlay.png", overlay_png(fixed, before, warped, jacobian))
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _check_points(points: PointSet, fixed: MedicalImage, path: Path | None) -> None:
    """World points of the fixed image, each inside it (a point outside cannot be mapped meaningfully)."""
    if points.space != "world":
        raise MedlearnError("points must be world positions (columns label,x,y[,z] in mm)", path)
    world = _world3(points)
    voxels = (np.linalg.inv(fixed.affine) @ np.c_[world, np.ones(len(world))].T)[: fixed.spatial_ndim].T
    shape = np.asarray(fixed.spatial_shape)
    outside = np.any((voxels < -0.5) | (voxels > shape - 0.5), axis=1)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        name = points.labels[first] or points.names[first] or f"row {first + 2}"
        raise MedlearnError(
            f"point {name!r} at {np.round(world[first], 1).tolist()} mm lies outside the fixed image", path
        )


def _mask(path: Path | None, fixed: MedicalImage) -> MedicalImage | None:
    if path is None:
        return None
    mask = load(path)
    check_same_geometry(fixed, mask)
    return mask


def _ones(image: MedicalImage) -> MedicalImage:
    """An image of ones on ``image``'s grid: resampled, it says which fixed voxels the moving image covers."""
    return image_from_affine(np.ones((1, *image.spatial_shape), np.float32), image.affine)


def _similarity(fixed: MedicalImage, other: MedicalImage, overlap: np.ndarray) -> dict[str, float]:
    a, b = fixed.array[0], other.array[0]
    return {"ncc": ncc(a, b, overlap), "nmi": nmi(a, b, overlap), "overlap_share": float(overlap.mean())}


def _like_input(warped: MedicalImage, moving: MedicalImage) -> MedicalImage:
    """Integer inputs get their dtype back (rounded and clipped), so a PNG stays a PNG of the same depth."""
    dtype = moving.array.dtype
    if not np.issubdtype(dtype, np.integer):
        return warped
    info = np.iinfo(dtype)
    array = np.clip(np.rint(warped.array), info.min, info.max).astype(dtype)
    return image_from_affine(array, warped.affine, modality=warped.modality, tags=dict(warped.tags))


def _world3(points: PointSet) -> np.ndarray:
    """World points padded to x, y, z (a 2D image's points keep z = 0; the plane's z is not moved)."""
    world = np.zeros((len(points), 3))
    world[:, : points.coordinates.shape[1]] = points.coordinates
    return world


def _write_transform(transform: sitk.Transform, path: Path) -> Path:
    """ITK picks the file format by the name's suffix, so the temporary file keeps it (in a private folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".transform-", dir=path.parent))
    try:
        sitk.WriteTransform(transform, str(folder / path.name))
        os.replace(folder / path.name, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path
