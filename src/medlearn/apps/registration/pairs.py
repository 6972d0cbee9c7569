"""Training and validation pairs for learned registration: two cohort images, or one image and a synthetic
deformation of it (a known, smooth, invertible warp: a random stationary velocity on a coarse lattice integrated
by scaling and squaring), optionally each with its own random contrast (SynthMorph's idea: a model that never
sees two images of the same contrast cannot rely on equal intensities).

A random pair sampler in the TorchIO manner: :func:`sample_pair_parameters` draws every random choice from a
generator seeded by ``(seed, index)``, then :func:`make_pair` builds the pair deterministically from them, so
item ``i`` is the same pair in every epoch and on every worker.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.blocks import DVF2DDF
from torch.utils.data import Dataset

from medlearn.apps.registration.cohort import Volume
from medlearn.data.patches import VIRTUAL_LENGTH
from medlearn.errors import MedlearnError
from medlearn.models.registration import quiet_warp

#: Synthetic velocity lattice: one control point per this many voxels.
LATTICE = 8


@dataclass(frozen=True)
class PairParameters:
    fixed: int
    moving: int | None  # None: a synthetic deformation of the fixed image
    velocity: np.ndarray | None  # (d, *lattice) voxels, when synthetic
    gammas: tuple[float, float]
    inverted: tuple[bool, bool]


def sample_pair_parameters(
    rng: np.random.Generator,
    count: int,
    shape: Sequence[int],
    *,
    synthetic_share: float,
    synthetic_voxels: float,
    random_contrast: bool,
) -> PairParameters:
    fixed = int(rng.integers(count))
    synthetic = count < 2 or rng.random() < synthetic_share
    moving = None if synthetic else int((fixed + 1 + rng.integers(count - 1)) % count)
    velocity = None
    if synthetic:
        lattice = [max(2, int(np.ceil(n / LATTICE))) for n in shape]
        velocity = rng.normal(0.0, synthetic_voxels, size=(len(shape), *lattice)).astype(np.float32)
    if random_contrast:
        gammas = (float(np.exp(rng.uniform(-0.7, 0.7))), float(np.exp(rng.uniform(-0.7, 0.7))))
        inverted = (bool(rng.random() < 0.3), bool(rng.random() < 0.3))
    else:
        gammas, inverted = (1.0, 1.0), (False, False)
    return PairParameters(fixed, moving, velocity, gammas, inverted)


def synthetic_displacement(velocity: np.ndarray, shape: Sequence[int]) -> torch.Tensor:
    """A smooth diffeomorphic displacement ``(1, d, *shape)`` (voxels) from a coarse velocity lattice."""
    mode = "trilinear" if len(shape) == 3 else "bilinear"
    dense = F.interpolate(torch.from_numpy(velocity)[None], size=tuple(shape), mode=mode, align_corners=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Using PyTorch native grid_sample")
        integrate = DVF2DDF(num_steps=7, mode="bilinear", padding_mode="border")
    return integrate(dense)


def contrast(image: torch.Tensor, gamma: float, inverted: bool) -> torch.Tensor:
    out = image.clamp(0.0, 1.0) ** gamma
    return 1.0 - out if inverted else out


def make_pair(volumes: Sequence[Volume], p: PairParameters) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pair (2, *shape), fixed_labels (1, *shape), moving_labels (1, *shape))``; label maps are -1 when the
    cohort has none."""
    fixed = volumes[p.fixed]
    image = torch.from_numpy(fixed.image)
    labels = torch.from_numpy(fixed.labels if fixed.labels is not None else -np.ones(image.shape[1:], np.int64))
    if p.moving is None:
        ddf = synthetic_displacement(p.velocity, image.shape[1:])
        moving_image = quiet_warp("bilinear", "border")(image[None], ddf)[0]
        moving_labels = quiet_warp("nearest", "border")(labels[None, None].float(), ddf)[0, 0].long()
    else:
        other = volumes[p.moving]
        moving_image = torch.from_numpy(other.image)
        moving_labels = torch.from_numpy(other.labels) if other.labels is not None else -torch.ones_like(labels)
    pair = torch.cat([contrast(image, p.gammas[0], p.inverted[0]), contrast(moving_image, p.gammas[1], p.inverted[1])])
    return pair.float(), labels[None], moving_labels[None]


class PairDataset(Dataset):
    """Random training pairs (item ``i`` is a function of ``seed`` and ``i``)."""

    def __init__(self, volumes: Sequence[Volume], settings, spacing: float, seed: int = 0) -> None:
        if not volumes:
            raise MedlearnError("no training images")
        if len({v.image.shape for v in volumes}) > 1:
            raise MedlearnError("training images must share one grid")
        self.volumes = list(volumes)
        self.settings = settings
        self.synthetic_voxels = settings.synthetic_mm / spacing
        self.seed = seed

    def __len__(self) -> int:
        return VIRTUAL_LENGTH

    def parameters(self, index: int) -> PairParameters:
        rng = np.random.default_rng((self.seed, index))
        return sample_pair_parameters(
            rng,
            len(self.volumes),
            self.volumes[0].image.shape[1:],
            synthetic_share=self.settings.synthetic_share,
            synthetic_voxels=self.synthetic_voxels,
            random_contrast=self.settings.contrast == "random",
        )

    def __getitem__(self, index: int):
        return make_pair(self.volumes, self.parameters(index))


def validation_pairs(volumes: Sequence[Volume], settings, spacing: float, seed: int = 0) -> list:
    """A fixed list of ``settings.val_pairs`` batches of one pair (cohort pairs and synthetic deformations alike),
    drawn once so every epoch is scored on the same pairs."""
    dataset = PairDataset(volumes, settings, spacing, seed=seed + 10_000)
    return [tuple(t[None] for t in dataset[index]) for index in range(settings.val_pairs)]
