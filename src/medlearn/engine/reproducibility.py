"""Seeding so that a run depends only on its seed, and a resumed run equals an uninterrupted one.

At the start of every epoch the trainer reseeds Python, NumPy and torch (and the data loaders'
generators) from ``(seed, epoch)``. Shuffling, augmentation noise and dropout of epoch ``e`` are
then a function of ``seed`` and ``e`` alone — not of how many random numbers earlier epochs,
validation or a previous process consumed — which is what makes ``--resume`` exact.

Data code should shuffle with a ``DataLoader(..., generator=make_loader_generator(seed))`` and
draw augmentation randomness from torch/NumPy/Python global generators (or from a generator it
passes to the trainer). With ``num_workers > 0`` torch derives each worker's seeds from the
loader's generator, so that stays reproducible too (not with ``persistent_workers=True``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for ``epoch`` of a run seeded with ``seed`` (distinct per pair)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(epoch)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_loader_generator(seed: int = 0) -> torch.Generator:
    """A generator for ``DataLoader(generator=...)``; the trainer reseeds it every epoch."""
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The distinct torch generators a DataLoader shuffles or samples with (its own, its samplers')."""
    candidates = [
        getattr(loader, "generator", None),
        getattr(getattr(loader, "sampler", None), "generator", None),
        getattr(getattr(getattr(loader, "batch_sampler", None), "sampler", None), "generator", None),
    ]
    found: list[torch.Generator] = []
    for generator in candidates:
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


def seed_epoch(seed: int, epoch: int, generators: Iterable[torch.Generator] = ()) -> int:
    """Reseed every global RNG and ``generators`` from ``(seed, epoch)``; returns the epoch seed."""
    value = epoch_seed(seed, epoch)
    seed_everything(value)
    for index, generator in enumerate(generators):
        generator.manual_seed(epoch_seed(value, index))
    return value


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as values ``torch.load(weights_only=True)`` can read back."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
