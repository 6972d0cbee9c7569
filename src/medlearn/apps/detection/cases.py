"""Detection cases as the network sees them: the image on the plan's grid with its objects moved there too.

The image goes through the same :func:`~medlearn.planning.preparation.prepare_image` as at prediction time;
object centres are mapped through world coordinates onto the prepared grid (so reorientation and resampling
can never misplace them), their radii converted to voxels of that grid, and their outlines (masks, boxes,
or balls around points) resampled by nearest neighbour. Patch sampling then centres a share of the patches on
objects, and the heads draw their targets from the points and outlines of each patch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medlearn.apps.detection.annotations import ImageObjects, read_objects
from medlearn.data.cases import Case
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.evaluation.detection import Targets
from medlearn.io import load
from medlearn.io.image import MedicalImage
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import map_voxels, planned_affine, prepare_image, prepare_label_map


@dataclass
class AnnotatedImage:
    """An image as loaded and the objects its annotation marks on it."""

    sample: Sample
    image: MedicalImage
    objects: ImageObjects


@dataclass
class DetectionCase:
    """A prepared case (image, object outlines as labels, centres as points with radii in voxels) and the
    targets of validation on the same grid."""

    case: Case
    targets: Targets


def read_annotated(samples: Sequence[Sample], *, default_radius_mm: float) -> list[AnnotatedImage]:
    """Load each image and its objects (errors name the image or annotation file)."""
    annotated = []
    for sample in samples:
        image = load(sample.path)
        objects = read_objects(sample, image, default_radius_mm=default_radius_mm)
        annotated.append(AnnotatedImage(sample, image, objects))
    return annotated


def voxel_size_mm(plan: SegmentationPlan) -> float:
    """One voxel of the plan's grid in mm (geometric mean of the spacing): radii in voxels <-> mm."""
    return float(np.prod(plan.target_spacing) ** (1.0 / len(plan.target_spacing)))


def prepare_detection_case(item: AnnotatedImage, plan: SegmentationPlan) -> DetectionCase:
    """The image on the plan's grid with its objects mapped there."""
    if plan.slice_axis is not None:
        raise MedlearnError(
            "detection does not support strongly anisotropic volumes yet (the plan would slide a 2D network "
            "over slices); resample the volumes closer to isotropic first",
            item.sample.path,
        )
    image, objects = item.image, item.objects
    array = prepare_image(image, plan)
    affine = planned_affine(image, plan)
    centres = map_voxels(objects.centres, image.affine, affine)
    outline = objects.object_map if objects.object_map is not None else objects.mask(image).array[0].astype(np.int32)
    object_map = prepare_label_map(outline, image, plan).astype(np.int32)
    if object_map.shape != array.shape[1:]:
        raise MedlearnError(f"object map {object_map.shape} does not match the prepared image {array.shape[1:]}")
    radii_voxels = objects.radius_mm / voxel_size_mm(plan)
    case = Case(
        image=array,
        labels=(object_map > 0).astype(np.uint8),
        name=item.sample.path.name,
        sample=item.sample,
        points=centres,
        point_radii=radii_voxels,
    )
    targets = Targets(
        centres=centres,
        radii_mm=objects.radius_mm,
        spacing=tuple(float(s) for s in plan.target_spacing),
        instance_map=object_map if objects.object_map is not None else None,
        labels=objects.labels,
    )
    return DetectionCase(case, targets)
