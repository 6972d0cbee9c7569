"""Atlas-based segmentation: register a labelled atlas image to each image and carry its labels across (nearest
neighbour). The classical baseline that needs no training at all, only one annotated example, and the one a
network must beat on anatomy that varies little between subjects (brain tissue, organs in a template space).

Registration is any :data:`~medlearn.apps.registration.classical.Registerer`: a classical method (default demons
on an affine start; B-spline or affine with mutual information across contrasts) or a trained registration run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.apps.registration.classical import ClassicalSettings, Registerer, classical_registerer
from medlearn.data.outputs import output_suffix
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.evaluation.segmentation import segmentation_metrics
from medlearn.io import load, save
from medlearn.io.geometry import check_same_geometry, image_from_affine
from medlearn.io.image import MedicalImage
from medlearn.io.itk import resample_like


@dataclass
class Atlas:
    """A labelled image to map onto others, and how to register it (``name`` says which, for tables)."""

    image: MedicalImage
    labels: MedicalImage
    registerer: Registerer
    name: str

    @classmethod
    def load(cls, image: Path, labels: Path, *, method: str = "demons", registerer: Registerer | None = None) -> Atlas:
        atlas, atlas_labels = load(image), load(labels)
        check_same_geometry(atlas, atlas_labels)
        if not np.any(atlas_labels.array):
            raise MedlearnError("the atlas label map is empty", labels)
        if registerer is None:
            registerer = classical_registerer(ClassicalSettings(method=method))
            name = f"atlas ({method})"
        else:
            name = f"atlas ({registerer.name})"
        return cls(atlas, atlas_labels, registerer, name)

    def segment(self, image: MedicalImage) -> np.ndarray:
        """The atlas labels on ``image``'s grid (``image`` fixed, the atlas moving), as int64 class values."""
        if image.spatial_ndim != self.image.spatial_ndim:
            raise MedlearnError(
                f"the atlas is {self.image.spatial_ndim}D, this image {image.spatial_ndim}D", image.source
            )
        result = self.registerer(image, self.image, None)
        warped = resample_like(self.labels, image, result.transform, labels=True)
        return np.rint(warped.array[0]).astype(np.int64)


def segment_with_atlas(atlas: Atlas, samples: Sequence[Sample], out: Path, labels: Sequence[int] | None = None) -> dict:
    """``segment atlas``: each image's atlas segmentation written to ``out`` (the input's format, same stem), and,
    where a mask is given, Dice/IoU/HD95/ASD per case and their means (the keys of ``segment evaluate``)."""
    out = Path(out)
    cases = []
    for sample in samples:
        image = load(sample.path)
        started = time.perf_counter()
        predicted = atlas.segment(image)
        seconds = time.perf_counter() - started
        stem = Path(sample.path).name.split(".")[0]
        mask = image_from_affine(predicted[None].astype(np.uint8), image.affine)
        written = save(mask, out / f"{stem}_atlas{output_suffix(sample.path, image)}")
        case = {"case": Path(sample.path).name, "mask": str(written), "seconds": round(seconds, 3)}
        if sample.target is not None:
            truth_image = load(sample.target)
            check_same_geometry(image, truth_image)
            truth = np.rint(truth_image.array[0]).astype(np.int64)
            classes = [c for c in (labels or sorted(set(np.unique(truth)) | set(np.unique(predicted)))) if c != 0]
            per_class = segmentation_metrics(predicted, truth, image.spacing, classes)
            for key in ("dice", "iou", "hd95_mm", "asd_mm"):
                values = [m[key] for m in per_class.values() if np.isfinite(m[key])]
                case[key] = float(np.mean(values)) if values else None
        cases.append(case)
    summary: dict = {"method": atlas.name, "cases": len(cases), "per_case": cases}
    for key in ("dice", "iou", "hd95_mm", "asd_mm", "seconds"):
        values = [c[key] for c in cases if c.get(key) is not None]
        summary[key] = float(np.mean(values)) if values else None
    return summary
