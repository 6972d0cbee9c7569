"""Colour helpers: many medical "RGB" files (JPG exports, screenshots) are grey in disguise."""

from __future__ import annotations

import dataclasses

import numpy as np

from medlearn.io.image import MedicalImage

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 luma, the weights Pillow uses for ``convert("L")``."""


def channels_identical(array: np.ndarray) -> bool:
    """True for a channel-first 3-channel array whose channels are equal (grey stored as RGB)."""
    return array.shape[0] == 3 and bool(np.array_equal(array[0], array[1]) and np.array_equal(array[0], array[2]))


def to_grey(image: MedicalImage) -> MedicalImage:
    """A 1-channel copy: the shared channel of grey-as-RGB, otherwise BT.601 luminance.

    Integer images stay in their dtype (rounded) so 8-bit stays 8-bit; geometry is unchanged.
    """
    if image.channels == 1:
        return image
    if image.channels != 3:
        raise ValueError(f"to_grey needs 1 or 3 channels, got {image.channels}")
    if image.tags.get("rgb_is_grey") or channels_identical(image.array):
        grey = image.array[:1].copy()
    else:
        luma = np.tensordot(LUMA_WEIGHTS, image.array.astype(np.float64), axes=1)[None]
        if np.issubdtype(image.array.dtype, np.integer):
            info = np.iinfo(image.array.dtype)
            grey = np.clip(np.rint(luma), info.min, info.max).astype(image.array.dtype)
        else:
            grey = luma.astype(image.array.dtype)
    tags = {k: v for k, v in image.tags.items() if k != "rgb_is_grey"}
    tags["converted_from"] = image.photometric
    return dataclasses.replace(image, array=grey, photometric="MONOCHROME2", tags=tags)
