"""Named landmarks of an image, from the point files users have (3D Slicer ``.fcsv`` / ``.mrk.json``, or a CSV
with a ``name`` column and ``i,j[,k]`` or ``x,y[,z]``).

A localisation CSV lists ``image,annotation[,group]``. Landmarks are identified by name, so files may list them in
any order; every training image must mark every landmark of the set (a name missing from one image would teach
the network that the landmark is absent there), and a name twice in one file is an error, as is a point outside
the image (checked by :func:`medlearn.io.markups.points_on_image`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.data.records import Sample
from medlearn.data.sources import samples_from_csv
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.image import MedicalImage
from medlearn.io.markups import PointSet, points_on_image, read_annotation_file


@dataclass
class ImageLandmarks:
    """An image as loaded and its named landmarks in its own voxel coordinates."""

    sample: Sample
    image: MedicalImage
    positions: dict[str, np.ndarray]  # name -> (d,) voxel coordinates

    def array(self, names: Sequence[str]) -> np.ndarray:
        """``(K, d)`` voxel coordinates in ``names`` order (NaN rows for names this image does not mark)."""
        ndim = self.image.spatial_ndim
        return np.array([self.positions.get(name, np.full(ndim, np.nan)) for name in names]).reshape(len(names), ndim)


def load_localisation_samples(source: str | Path) -> list[Sample]:
    """``image,annotation[,group]`` rows of a CSV; every row needs an annotation file."""
    samples = samples_from_csv(source)
    missing = [sample.path.name for sample in samples if sample.target is None]
    if missing:
        raise MedlearnError(
            f"{len(missing)} row(s) have no landmark file (an 'annotation' column is required), e.g. {missing[0]}",
            source,
        )
    return samples


def read_landmarks(sample: Sample, image: MedicalImage | None = None) -> ImageLandmarks:
    """The named landmarks of ``sample`` (its image loaded unless given)."""
    image = load(sample.path) if image is None else image
    points = read_annotation_file(sample.target)
    if not isinstance(points, PointSet):
        raise MedlearnError("a landmark file must hold points, not boxes", sample.target)
    names = [name or label for name, label in zip(points.names, points.labels, strict=True)]
    if any(not name for name in names):
        raise MedlearnError("every landmark needs a name (Slicer label, or a 'name' column)", sample.target)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise MedlearnError(f"landmark names appear more than once: {', '.join(repeated)}", sample.target)
    voxels = points_on_image(points, image)
    return ImageLandmarks(sample, image, {name: voxels[n] for n, name in enumerate(names)})


def landmark_names(items: Sequence[ImageLandmarks], source: str | Path) -> list[str]:
    """The landmark set of a training set, in the order of its first file; every image must mark all of them."""
    if not items:
        raise MedlearnError("no training images", source)
    names = list(items[0].positions)
    wanted = set(names)
    for item in items:
        missing = sorted(wanted - set(item.positions))
        extra = sorted(set(item.positions) - wanted)
        if missing or extra:
            problem = "; ".join(
                part
                for part in (
                    f"lacks {', '.join(missing)}" if missing else "",
                    f"has {', '.join(extra)} that {items[0].sample.target} does not" if extra else "",
                )
                if part
            )
            raise MedlearnError(f"every training image must mark the same landmarks: it {problem}", item.sample.target)
    return names
