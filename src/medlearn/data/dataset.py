"""Torch datasets over preloaded arrays: indexing is a memory copy plus optional augmentation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from medlearn.data.augment import plain_tensors

Augmentation = Callable[[torch.Tensor], torch.Tensor]


class ArrayClassificationDataset(Dataset):
    """``(image, label)`` pairs from an ``(N, C, H, W)`` array and integer labels.

    Augmentation randomness is drawn from torch's global generator per item, which the engine
    reseeds at every epoch: an epoch's augmentations depend only on (seed, epoch), so a resumed
    run repeats them exactly.
    """

    def __init__(self, arrays: np.ndarray, labels: Sequence[int], augment: Augmentation | None = None) -> None:
        if len(arrays) != len(labels):
            raise ValueError(f"{len(arrays)} images but {len(labels)} labels")
        self.arrays = arrays
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.augment = augment

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(self.arrays[index].astype(np.float32))
        if self.augment is not None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            if hasattr(self.augment, "set_random_state"):
                self.augment.set_random_state(seed)
            with plain_tensors():
                image = torch.as_tensor(self.augment(image), dtype=torch.float32)
        return image, self.labels[index]
