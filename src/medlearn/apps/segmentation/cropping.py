"""Localise, then segment: a box-localisation run (``localise train`` on masks or boxes) cuts each image down to
the region of one structure plus a margin before the segmenter sees it, and the mask goes back into the whole
image. A network that only sees the region around an organ spends its patches and its capacity there (the cascade
of de Vos et al. 2016's localiser feeding a segmenter).

When the localiser finds no box in an image, the whole image is segmented and a warning says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.apps.localisation.box_model import TrainedBoxLocaliser
from medlearn.errors import MedlearnError
from medlearn.io.crop import Crop, crop_around
from medlearn.io.image import MedicalImage

log = logging.getLogger("medlearn")


@dataclass
class RegionCropper:
    """Crops images to a structure's predicted box (or the box around all structures) plus ``margin_mm``."""

    localiser: TrainedBoxLocaliser
    structure: str | None
    margin_mm: float

    @classmethod
    def from_run(cls, run_dir: str | Path, structure: str | None, margin_mm: float) -> RegionCropper:
        if not Path(run_dir).is_dir():
            raise MedlearnError("the box-localisation run to crop with is not there", run_dir)
        localiser = TrainedBoxLocaliser.from_run_dir(run_dir)
        known = localiser.settings.structures
        if structure is not None and structure not in known:
            raise MedlearnError(f"the localiser knows structures {known}, not {structure!r}", run_dir)
        return cls(localiser, structure, float(margin_mm))

    def region(self, image: MedicalImage) -> Crop:
        boxes = self.localiser.predict(image)
        chosen = [boxes[self.structure]] if self.structure is not None else list(boxes.values())
        found = [box for box in chosen if box is not None]
        if not found:
            log.warning("%s: the localiser found no box; the whole image is segmented", image.source)
            return crop_around(image, None, self.margin_mm)
        ndim = image.spatial_ndim
        union = np.concatenate([np.min([b[:ndim] for b in found], axis=0), np.max([b[ndim:] for b in found], axis=0)])
        return crop_around(image, union, self.margin_mm)
