"""Generated images tiled into one PNG at their native resolution (no resampling, no axes)."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image


def tile(images: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """``(N, C, H, W)`` images in [0, 1] (C = 1 or 3) as one ``uint8`` grid, rows of ``columns`` images."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    count, channels, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.ones((channels, rows * (height + gap) - gap, columns * (width + gap) - gap), dtype=np.float32)
    for index, image in enumerate(images):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        grid[:, top : top + height, left : left + width] = image
    grid = np.round(grid * 255).astype(np.uint8)
    return grid[0] if channels == 1 else grid.transpose(1, 2, 0)


def grid_png(images: np.ndarray, columns: int | None = None) -> bytes:
    """:func:`tile` encoded as PNG bytes (for a file or the HTML report)."""
    buffer = io.BytesIO()
    Image.fromarray(tile(images, columns)).save(buffer, format="PNG")
    return buffer.getvalue()
