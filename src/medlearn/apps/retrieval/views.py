"""Two augmented views of every image, for self-supervised (SimCLR-style) training of a retrieval embedding.

The views must differ in what retrieval should ignore and agree in what it should find. SimCLR's natural-image
recipe (strong colour jitter, greyscale, hue shifts) would teach a medical embedding to ignore intensity, which
carries the finding, so the views here are medical-safe: the task's own augmentation for the modality (no
left-right flip for radiographs, rotations and scaling of plausible size, mild gamma, noise) at its strong setting,
a random zoom (SimCLR's random resized crop: the view covers 67-100% of the field), and a mild blur.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Compose, RandGaussianSmooth, RandZoom
from torch.utils.data import Dataset

from medlearn.data.augment import build_augmentation, plain_tensors


def view_augmentation(modality: str | None, spatial_dims: int = 2) -> Compose:
    """One random view of a channel-first image (see the module docstring)."""
    return Compose(
        [
            build_augmentation(modality or "OT", spatial_dims=spatial_dims, strength="strong"),
            RandZoom(prob=0.8, min_zoom=1.0, max_zoom=1.5, keep_size=True, padding_mode="edge"),
            RandGaussianSmooth(prob=0.3, sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0), sigma_z=(0.25, 1.0)),
        ]
    )


class TwoViewDataset(Dataset):
    """``(view, view)`` of each ``(N, C, H, W)`` array row. Each item's randomness is drawn from torch's global
    generator, which the engine reseeds every epoch, so an epoch's views depend only on (seed, epoch) and a resumed
    run repeats them."""

    def __init__(self, arrays: np.ndarray, modality: str | None) -> None:
        self.arrays = arrays
        self.augment = view_augmentation(modality)

    def __len__(self) -> int:
        return len(self.arrays)

    def view(self, index: int, seed: int) -> torch.Tensor:
        self.augment.set_random_state(seed)
        with plain_tensors():
            return torch.as_tensor(self.augment(torch.from_numpy(self.arrays[index].astype(np.float32))))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        first, second = (int(s) for s in torch.randint(0, 2**31 - 1, (2,)))
        return self.view(index, first), self.view(index, second)


def fixed_views(arrays: np.ndarray, modality: str | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views of every row drawn once from ``seed``: the validation set, the same at every epoch."""
    dataset = TwoViewDataset(arrays, modality)
    rng = np.random.default_rng(seed)
    pairs = [
        (dataset.view(i, int(a)), dataset.view(i, int(b)))
        for i, (a, b) in enumerate(rng.integers(0, 2**31 - 1, (len(arrays), 2)))
    ]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
