"""A landmark and box localisation set made from one template: each case is the template under a random smooth
deformation (and, if asked, a contrast change), its named landmarks and label map moved exactly with it.

``medlearn data landmarks TEMPLATE --out DIR`` writes ``images/`` (NIfTI, every file carrying the ``deformed``
provenance mark, so any run or report on them says they are one template's deformations), ``landmarks/*.fcsv``
(3D Slicer markups, world mm RAS) listed in ``landmarks.csv`` (``image,annotation,group``: what ``localise train``
reads) and, with a label map, ``labels/`` and named ``boxes/*.csv`` (``label,x0,y0,z0,x1,y1,z1``) listed in
``boxes.csv``; ``cases.csv`` records each case's contrast and deformation size.

Without a landmark file the template is taken to be in MNI152 space and :data:`MNI152_LANDMARKS` are used:
approximate positions read off the MNI152 2009 symmetric template. Their anatomical precision does not enter any
figure: the truth of every case is the exact image of the template's point under that case's deformation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.data.deformation import Deformation, RandomContrast, RandomDeformation
from medlearn.errors import MedlearnError
from medlearn.io import load, resample_to_spacing, save
from medlearn.io.geometry import check_same_geometry, image_from_affine, world_to_voxel
from medlearn.io.image import MedicalImage
from medlearn.io.markups import PointSet, read_annotation_file, write_fcsv
from medlearn.utils.atomic import write_csv_atomic

#: Named landmarks of the MNI152 (2009, symmetric) brain template, world mm RAS (x: left-right, y: back-front,
#: z: down-up); midline points at x = 0, the temporal-lobe points mirrored.
MNI152_LANDMARKS: dict[str, tuple[float, float, float]] = {
    "anterior commissure": (0.0, 2.0, -4.0),
    "posterior commissure": (0.0, -24.0, -2.0),
    "genu of corpus callosum": (0.0, 32.0, 8.0),
    "splenium of corpus callosum": (0.0, -40.0, 10.0),
    "cerebellar vermis": (0.0, -50.0, -28.0),
    "left anterior temporal lobe": (-40.0, 16.0, -32.0),
    "right anterior temporal lobe": (40.0, 16.0, -32.0),
}
#: More distinct values than this is not a label map of named structures.
MAX_LABELS = 64
BOX_COLUMNS = ("label", "x0", "y0", "z0", "x1", "y1", "z1")


@dataclass(frozen=True)
class LandmarkSetSpec:
    """``count`` cases on a ``spacing_mm`` grid; deformation and contrast drawn per case from ``seed``."""

    count: int = 20
    spacing_mm: float = 3.0
    seed: int = 0
    deformation: RandomDeformation = field(default_factory=RandomDeformation)
    contrast: RandomContrast = field(default_factory=RandomContrast)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise MedlearnError(f"count must be at least 1, got {self.count}")
        if self.spacing_mm <= 0:
            raise MedlearnError(f"spacing must be positive millimetres, got {self.spacing_mm}")


@dataclass(frozen=True)
class TemplateLabels:
    """A label map on the template's grid and the name of each non-zero value (boxes are named by them)."""

    image: MedicalImage
    names: dict[int, str]


def mni152_landmarks() -> PointSet:
    """:data:`MNI152_LANDMARKS` as a point set."""
    names = tuple(MNI152_LANDMARKS)
    return PointSet(
        coordinates=np.array([MNI152_LANDMARKS[name] for name in names]),
        space="world",
        radius_mm=np.zeros(len(names)),
        labels=names,
        names=names,
        source="MNI152 landmarks (medlearn.data.landmark_set)",
    )


def read_template_landmarks(path: Path | None, template: MedicalImage) -> PointSet:
    """Landmarks of the template (a markups file, or MNI152's), each checked to lie in the template's foreground:
    a point in the background means the template is not in the space the landmarks were written for."""
    points = mni152_landmarks() if path is None else read_annotation_file(path)
    if not isinstance(points, PointSet) or len(points) == 0:
        raise MedlearnError("the landmark file holds no points", path)
    if points.space != "world" or points.coordinates.shape[1] != 3:
        raise MedlearnError("template landmarks must be 3D world positions (x,y,z in mm)", path)
    names = [name or label for name, label in zip(points.names, points.labels, strict=True)]
    if any(not name for name in names) or len(set(names)) != len(names):
        raise MedlearnError("every template landmark needs its own name", path or points.source)
    shape = np.asarray(template.spatial_shape)
    for name, world in zip(names, points.coordinates, strict=True):
        voxel = np.rint(world_to_voxel(template, world)).astype(int)
        inside = np.all(voxel >= 0) and np.all(voxel < shape)
        if not inside or template.array[(0, *voxel)] <= 0:
            where = "outside the template" if not inside else "in the template's background"
            raise MedlearnError(
                f"landmark {name!r} at {tuple(np.round(world, 1))} mm lies {where}: "
                + (
                    "is the template in MNI152 space? Otherwise pass --landmarks" if path is None else "check its space"
                ),
                template.source,
            )
    return PointSet(points.coordinates, "world", points.radius_mm, tuple(names), tuple(names), points.source)


def make_landmark_set(
    template: MedicalImage,
    out_dir: Path,
    spec: LandmarkSetSpec,
    landmarks: PointSet,
    labels: TemplateLabels | None = None,
) -> Path:
    """Write ``spec.count`` deformed cases of ``template``; return ``landmarks.csv``."""
    if template.spatial_ndim != 3:
        raise MedlearnError("a landmark set is made from a 3D template", template.source)
    if labels is not None:
        check_same_geometry(template, labels.image)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(spec.seed)
    grid = resample_to_spacing(template, spec.spacing_mm)
    coarse_labels = None if labels is None else resample_to_spacing(labels.image, spec.spacing_mm, order=0)
    landmark_rows, box_rows, case_rows = [], [], []
    for index in range(spec.count):
        stem = f"case_{index:04d}"
        deformation = spec.deformation.sample(grid, rng)
        contrast = spec.contrast.sample(rng)
        image = contrast.apply(deformation.apply(grid))
        image = image_from_affine(image.array, image.affine, modality=template.modality, tags={"deformed": True})
        image_path = save(image, out_dir / "images" / f"{stem}.nii.gz")
        moved = deformation.map_points(landmarks.coordinates)
        markup = write_fcsv(out_dir / "landmarks" / f"{stem}.fcsv", moved, landmarks.names)
        landmark_rows.append((image_path.relative_to(out_dir), markup.relative_to(out_dir), stem))
        if labels is not None and coarse_labels is not None:
            warped = deformation.apply(coarse_labels, order=0)
            save(
                image_from_affine(warped.array, warped.affine, tags={"deformed": True}),
                out_dir / "labels" / f"{stem}.nii.gz",
            )
            boxes = write_csv_atomic(out_dir / "boxes" / f"{stem}.csv", BOX_COLUMNS, _boxes(warped, labels.names))
            box_rows.append((image_path.relative_to(out_dir), boxes.relative_to(out_dir), stem))
        case_rows.append(_case_row(stem, deformation, contrast.gamma, contrast.invert))
    if box_rows:
        write_csv_atomic(out_dir / "boxes.csv", ["image", "annotation", "group"], box_rows)
    write_csv_atomic(out_dir / "cases.csv", list(case_rows[0]), case_rows)
    return write_csv_atomic(out_dir / "landmarks.csv", ["image", "annotation", "group"], landmark_rows)


def _boxes(label_map: MedicalImage, names: dict[int, str]) -> list[tuple]:
    """Each named structure's box: the world extent of its voxel centres (what the boxes reader turns back into
    exactly these voxels)."""
    values = np.rint(label_map.array[0]).astype(int)
    rows = []
    for value, name in names.items():
        where = np.argwhere(values == value)
        if not len(where):
            continue
        low, high = where.min(axis=0), where.max(axis=0)
        corners = np.array([[(high if (c >> a) & 1 else low)[a] for a in range(3)] for c in range(8)], dtype=float)
        world = (label_map.affine[:3, :3] @ corners.T + label_map.affine[:3, 3:]).T
        rows.append((name, *np.round(world.min(axis=0), 4), *np.round(world.max(axis=0), 4)))
    return rows


def _case_row(stem: str, deformation: Deformation, gamma: float, invert: bool) -> dict:
    magnitude = np.linalg.norm(deformation.field.array, axis=0)
    return {
        "case": stem,
        "gamma": round(gamma, 4),
        "inverted": int(invert),
        "mean_displacement_mm": round(float(magnitude.mean()), 3),
        "max_displacement_mm": round(float(magnitude.max()), 3),
        "min_jacobian": round(deformation.min_jacobian(), 4),
    }


def load_template_labels(path: Path, names: list[str] | None) -> TemplateLabels:
    """A label map file; structure ``k`` named by ``names[k - 1]`` (default: its value)."""
    image = load(path)
    found = np.unique(image.array)
    if not np.array_equal(found, np.rint(found)) or len(found) > MAX_LABELS:
        raise MedlearnError(
            f"not a label map: {len(found)} distinct values"
            + ("" if np.array_equal(found, np.rint(found)) else ", not all whole numbers")
            + " (a probability or intensity map? threshold it into labels 1, 2, ... first)",
            path,
        )
    values = sorted(int(v) for v in found if v != 0)
    if not values:
        raise MedlearnError("the label map marks nothing", path)
    if names is not None and len(names) < max(values):
        raise MedlearnError(f"{len(names)} label names for label values up to {max(values)}", path)
    return TemplateLabels(image, {v: (names[v - 1] if names else str(v)) for v in values})
