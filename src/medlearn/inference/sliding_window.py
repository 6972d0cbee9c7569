"""Whole-image inference by overlapping windows: dense maps (MONAI's Gaussian-weighted sliding window) and
non-dense outputs (points found per window, shifted into the image and merged across overlaps).

A :class:`Window` says how to slide: the network's input size (``roi``), the overlap of neighbouring windows,
how many windows go through the network at once, and, for a network with fewer axes than the image
(slice-by-slice segmentation of thick-slice volumes), the axis whose slices it sees, a few at a time.

Dense outputs are weighted by a Gaussian (sigma = 1/8 of the window, as nnU-Net) so that the less reliable
window borders count less where windows overlap. Memory is bounded by the window and the window batch, not
the image; only the output map of the whole image is held (on the CPU). Test-time augmentation averages the
identity and a flip along each spatial axis (``d + 1`` passes rather than nnU-Net's ``2**d`` mirror
combinations: most of the gain for a fraction of the cost on a CPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn

from medlearn.io.intensity import pad_values

#: Slices of a volume processed together by a network of one axis less (bounds memory of the stacked batch).
SLICE_CHUNK = 16


@dataclass(frozen=True)
class Window:
    """How to slide a network over an image (see the module docstring)."""

    roi: tuple[int, ...]
    overlap: float = 0.5
    batch: int = 4
    slice_axis: int | None = None
    #: Per channel, the value that pads an image smaller than ``roi`` (the normalised background level);
    #: ``None``: each channel's own minimum. Never 0 blindly: after a fixed clip + z-score 0 is mean tissue.
    fill: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        object.__setattr__(self, "roi", tuple(int(n) for n in self.roi))

    @property
    def spatial_dims(self) -> int:
        return len(self.roi)


def dense_probabilities(
    model: nn.Module,
    image: torch.Tensor,
    window: Window,
    *,
    tta: bool = False,
    activation: Callable[[torch.Tensor], torch.Tensor] = lambda logits: torch.softmax(logits, dim=1),
) -> torch.Tensor:
    """The model's ``activation`` (default: class probabilities) over a ``(C, *spatial)`` image, ``(K, *spatial)``
    float32 on the CPU."""
    spatial = image.ndim - 1
    predictor = _dense_predictor(model, window, activation)
    inside = (slice(None), *map(slice, image.shape[1:]))  # the output without the padding
    if spatial == window.spatial_dims:
        padded = pad_to(image, window.roi, window.fill)
        return _with_flips(predictor, padded[None], window.spatial_dims, tta)[0][inside]
    if window.slice_axis is None or spatial != window.spatial_dims + 1:
        raise ValueError(f"a {window.spatial_dims}D window cannot slide over a {spatial}D image")
    roi = list(window.roi)
    roi.insert(window.slice_axis, image.shape[window.slice_axis + 1])
    slices = pad_to(image, roi, window.fill).movedim(window.slice_axis + 1, 0)  # (S, C, a, b)
    chunks = [
        _with_flips(predictor, slices[start : start + SLICE_CHUNK], window.spatial_dims, tta)
        for start in range(0, slices.shape[0], SLICE_CHUNK)
    ]
    return torch.cat(chunks).movedim(0, window.slice_axis + 1)[inside]  # (K, ..., S at slice_axis, ...)


def _dense_predictor(
    model: nn.Module, window: Window, activation: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    def predict(batch: torch.Tensor) -> torch.Tensor:
        return sliding_window_inference(
            batch,
            roi_size=list(window.roi),
            sw_batch_size=window.batch,
            predictor=lambda x: activation(model(x).float()),
            overlap=window.overlap,
            mode="gaussian",
            sigma_scale=0.125,
            padding_mode="constant",
            device=torch.device("cpu"),
        )

    return predict


def _with_flips(
    predict: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, spatial_dims: int, tta: bool
) -> torch.Tensor:
    total = predict(batch).float().cpu()
    if not tta:
        return total
    for axis in range(2, 2 + spatial_dims):
        flipped = predict(torch.flip(batch, dims=(axis,)))
        total += torch.flip(flipped.float().cpu(), dims=(axis,))
    return total / (spatial_dims + 1)


# -- non-dense outputs -----------------------------------------------------------------------------------------
def window_starts(shape: Sequence[int], window: Window) -> list[tuple[int, ...]]:
    """Start of every window along each axis, evenly spaced so the windows overlap by at least ``overlap`` and
    the last one ends at the image's edge (an image smaller than the window has one start, 0)."""
    per_axis = []
    for size, roi in zip(shape, window.roi, strict=True):
        if size <= roi:
            per_axis.append([0])
            continue
        stride = max(1, int(roi * (1 - window.overlap)))
        count = math.ceil((size - roi) / stride) + 1
        per_axis.append(sorted({int(round(v)) for v in np.linspace(0, size - roi, count)}))
    return [tuple(start) for start in np.array(np.meshgrid(*per_axis, indexing="ij")).reshape(len(shape), -1).T]


def points_by_window(
    find: Callable[[torch.Tensor], list[tuple[np.ndarray, np.ndarray]]],
    image: torch.Tensor,
    window: Window,
    *,
    merge_radius: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Points a model finds window by window, in the image's voxel coordinates, merged across overlaps.

    ``find`` takes a batch of windows ``(B, C, *roi)`` (padded with ``window.fill`` where the image is smaller)
    and returns, per window, ``(points (N, d) in window coordinates, scores (N,))``. Points from overlapping
    windows that lie within ``merge_radius`` voxels of a higher-scoring one are the same finding and are dropped (greedy
    non-maximum suppression). Returns ``(points (M, d), scores (M,))``, highest score first.
    """
    shape = tuple(image.shape[1:])
    padded = pad_to(image, window.roi, window.fill)
    starts = window_starts(shape, window)
    points, scores = [], []
    for first in range(0, len(starts), window.batch):
        chunk = starts[first : first + window.batch]
        batch = torch.stack([padded[(slice(None), *_window_slices(start, window.roi))] for start in chunk])
        for start, (found, score) in zip(chunk, find(batch), strict=True):
            found = np.asarray(found, dtype=float).reshape(-1, len(shape)) + np.asarray(start, dtype=float)
            inside = np.all((found >= 0) & (found <= np.asarray(shape) - 1), axis=1)
            points.append(found[inside])
            scores.append(np.asarray(score, dtype=float).reshape(-1)[inside])
    if not points:
        return np.zeros((0, len(shape))), np.zeros(0)
    return merge_points(np.concatenate(points), np.concatenate(scores), merge_radius)


def _window_slices(start: Sequence[int], roi: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(s, s + r) for s, r in zip(start, roi, strict=True))


def merge_points(points: np.ndarray, scores: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy non-maximum suppression of points: keep the best, drop those within ``radius``, repeat."""
    order = np.argsort(-scores, kind="stable")
    points, scores = points[order], scores[order]
    keep = np.ones(len(points), dtype=bool)
    for i in range(len(points)):
        if keep[i]:
            close = np.linalg.norm(points[i + 1 :] - points[i], axis=1) <= radius
            keep[i + 1 :] &= ~close
    return points[keep], scores[keep]


def pad_to(image: torch.Tensor, roi: Sequence[int], fill: Sequence[float] | None = None) -> torch.Tensor:
    """``image`` ``(C, *spatial)`` padded at the far end (coordinates keep their meaning) to at least ``roi``
    along every axis, channel ``c`` with ``fill[c]`` (``None``: the channel's minimum)."""
    pads = [max(0, r - n) for n, r in zip(image.shape[1:], roi, strict=True)]
    if not any(pads):
        return image
    values = pad_values(image.numpy(force=True), fill)
    out = torch.empty((image.shape[0], *(n + p for n, p in zip(image.shape[1:], pads, strict=True))), dtype=image.dtype)
    for channel, value in enumerate(values):
        out[channel].fill_(value)
    out[(slice(None), *map(slice, image.shape[1:]))] = image
    return out
