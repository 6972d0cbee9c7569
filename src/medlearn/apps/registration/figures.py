"""The registration overlay: fixed, moving (as it lies before registration) and warped middle slices, a
checkerboard of fixed and warped, where a good registration shows edges that run on across the squares, and the
Jacobian determinant of the deformation (blue: compressed, red: expanded, black: folded)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from medlearn.io.image import MedicalImage  # noqa: E402

SQUARES = 8


def middle_slice(image: MedicalImage) -> np.ndarray:
    """The middle slice along the last axis (axial for RAS volumes), or the 2D image, oriented for display."""
    array = image.array[0]
    plane = array[..., array.shape[-1] // 2] if array.ndim == 3 else array
    return np.asarray(plane, np.float32).T


def _scaled(plane: np.ndarray) -> np.ndarray:
    low, high = np.percentile(plane, [1, 99])
    return np.clip((plane - low) / max(high - low, 1e-6), 0, 1)


def checkerboard(a: np.ndarray, b: np.ndarray, squares: int = SQUARES) -> np.ndarray:
    rows = (np.arange(a.shape[0]) * squares // max(a.shape[0], 1))[:, None]
    cols = (np.arange(a.shape[1]) * squares // max(a.shape[1], 1))[None, :]
    return np.where((rows + cols) % 2 == 0, a, b)


def overlay_png(
    fixed: MedicalImage, before: MedicalImage, warped: MedicalImage, jacobian: MedicalImage | None = None
) -> bytes:
    planes = [_scaled(middle_slice(image)) for image in (fixed, before, warped)]
    panels = [*planes, checkerboard(planes[0], planes[2])]
    titles = ["fixed", "moving (before)", "warped", "fixed | warped checkerboard"]
    columns = len(panels) + (jacobian is not None)
    figure = Figure(figsize=(3 * columns, 3.4))
    for index, (panel, title) in enumerate(zip(panels, titles, strict=True)):
        axis = figure.add_subplot(1, columns, index + 1)
        axis.imshow(panel, cmap="gray", origin="lower", vmin=0, vmax=1)
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    if jacobian is not None:
        axis = figure.add_subplot(1, columns, columns)
        determinant = middle_slice(jacobian)
        shown = axis.imshow(np.log2(np.clip(determinant, 1 / 4, 4)), cmap="RdBu_r", origin="lower", vmin=-1, vmax=1)
        folded = np.ma.masked_where(determinant > 0, np.ones_like(determinant))
        axis.imshow(folded, cmap="gray", origin="lower", vmin=0, vmax=1)
        axis.set_title(f"Jacobian (folded: {np.mean(jacobian.array <= 0):.2%})", fontsize=10)
        axis.axis("off")
        figure.colorbar(shown, ax=axis, fraction=0.046, ticks=[-1, 0, 1]).ax.set_yticklabels(["1/2", "1", "2"])
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, facecolor="white")
    return buffer.getvalue()
