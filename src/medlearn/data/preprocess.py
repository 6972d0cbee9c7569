"""Turn any loaded image into the fixed-size, normalised array a 2D classifier consumes.

Done once per image (then cached), so it may be thorough: grey conversion, modality-aware
intensity normalisation, aspect-preserving padding to a square, anti-aliased resizing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from medlearn.errors import MedlearnError, NonFiniteImageError
from medlearn.io import normalize_intensity, to_grey
from medlearn.io.image import MedicalImage
from medlearn.io.intensity import apply_normalization, unit_range, window_bounds


@dataclass(frozen=True)
class ClassificationPreprocessing:
    """How images become model inputs; stored in the run's config so predict does the same.

    ``modality=None`` trusts each file's own modality (DICOM tag); JPG/PNG say "OT", so name the
    modality of such data (Br35H is "MR") to get the right normalisation.
    """

    image_size: int = 128
    channels: int = 1
    modality: str | None = None
    ct_window: str | None = None
    #: "modality": the classifier's normalisation (CT window, MR z-score, display scaling);
    #: "unit": [0, 1] for every modality (:func:`~medlearn.io.intensity.unit_range`), what generators need.
    intensity: str = "modality"
    #: With "modality" intensities of non-CT images: "image" (each image by its own statistics) or "dataset"
    #: (one fixed clip + z-score learned on the training images, :mod:`medlearn.planning.normalization`).
    normalization: str = "image"
    normalization_params: dict = field(default_factory=dict)

    #: Bump when ``__call__`` computes something else for the same settings: cached arrays are keyed by it.
    code_version = 2

    def __post_init__(self) -> None:
        if self.intensity not in ("modality", "unit"):
            raise MedlearnError(f"intensity must be 'modality' or 'unit', not {self.intensity!r}")
        if self.normalization == "dataset" and not self.normalization_params:
            raise MedlearnError("the dataset normalization needs its parameters (learned on the training images)")

    def to_dict(self) -> dict:
        return asdict(self)

    def stored(self, image: MedicalImage) -> np.ndarray:
        """The image as stored, before any normalisation: middle slice of a volume, grey unless 3 channels are
        kept (a grey image repeated into them), float32, ``(channels, H, W)``; non-finite pixels are an error."""

        if image.spatial_ndim == 3:
            image = _middle_slice(image)
        if self.channels == 1 and image.channels != 1:
            image = to_grey(image)
        array = image.array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise NonFiniteImageError(f"{bad} non-finite pixel values (NaN or inf)", image.source)
        if self.channels == 3 and array.shape[0] == 1:
            array = np.repeat(array, 3, axis=0)
        return array

    def __call__(self, image: MedicalImage) -> np.ndarray:
        """``(channels, image_size, image_size)`` float32 array."""

        array = self.stored(image)
        modality = self.modality or image.modality
        options = {"window": parse_ct_window(self.ct_window)} if (self.ct_window and modality == "CT") else {}
        if self.intensity == "unit":
            array = unit_range(array, modality, **options)
        elif self.normalization == "dataset" and modality != "CT":
            array = apply_normalization(array, "dataset", self.normalization_params)
        else:
            array = np.asarray(normalize_intensity(array, modality, **options), dtype=np.float32)
        return _square_resize(array, self.image_size)


def parse_ct_window(text: str) -> str | tuple[float, float]:
    """A preset name ("lung") or a custom "center,width" in HU ("40,400"), checked."""

    window: str | tuple[float, float] = text
    if "," in text:
        try:
            center, width = (float(v) for v in text.split(","))
        except ValueError:
            raise MedlearnError(f"CT window {text!r} is neither a preset nor 'center,width' in HU") from None
        window = (center, width)
    window_bounds(window)  # raises a clear error for unknown presets and non-positive widths
    return window


def _middle_slice(image: MedicalImage) -> MedicalImage:
    """A 3D volume classified by a 2D model: its middle slice along the last axis."""
    from dataclasses import replace

    k = image.array.shape[-1] // 2
    array = image.array[..., k]
    return replace(
        image,
        array=array,
        spacing=image.spacing[:2],
        origin=image.origin[:2],
        direction=np.asarray(image.direction)[:2, :2],
    )


def _square_resize(array: np.ndarray, size: int) -> np.ndarray:
    """Pad the shorter side with the image's minimum (background) to a square, then resize with anti-aliasing."""
    channels, height, width = array.shape
    side = max(height, width)
    if height != width:
        background = float(array.min())
        padded = np.full((channels, side, side), background, dtype=np.float32)
        top, left = (side - height) // 2, (side - width) // 2
        padded[:, top : top + height, left : left + width] = array
        array = padded
    if side == size:
        return np.ascontiguousarray(array, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(array))[None]
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized[0].numpy()
