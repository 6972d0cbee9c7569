"""Unsupervised pre-training of a classifier's feature trunk as a denoising autoencoder (METHODS pretrain-ae).

The classifier's own trunk is the encoder of a denoising autoencoder
(:func:`~medlearn.models.autoencoder.build_autoencoder`), trained on unlabelled images (Gaussian noise
plus masked pixels in, the clean image out, MSE) through the engine's Trainer on a
:class:`~medlearn.apps.studies.reconstruction.DenoisingReconstructionTask`; a classifier then starts from the
trunk's weights. Kept apart from the augmentation study, its first user, so that any workflow can
pre-train a trunk, and so the study module holds only the study.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medlearn.apps.classification.arrays import ArrayTraining
from medlearn.apps.studies.reconstruction import DenoisingReconstructionTask
from medlearn.engine.reproducibility import make_loader_generator, seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.evaluation.classification import to_jsonable
from medlearn.models import create_model
from medlearn.models.autoencoder import build_autoencoder, state_digest, trunk_state
from medlearn.utils.atomic import atomic_path, write_text_atomic


@dataclass(frozen=True)
class Denoising:
    """What the autoencoder learns to undo and for how long: ``noise_std`` Gaussian noise and ``mask_fraction``
    masked pixels, ``epochs`` epochs, a decoder of ``decoder_width`` channels."""

    epochs: int = 20
    noise_std: float = 0.3
    mask_fraction: float = 0.25
    decoder_width: int = 64


def pretrained_encoder(
    images: np.ndarray,
    training: ArrayTraining,
    denoising: Denoising,
    seed: int,
    folder: Path,
    *,
    keep_checkpoints: bool = False,
    quiet: bool = True,
) -> tuple[dict[str, torch.Tensor], str]:
    """The seed's denoising-autoencoder trunk weights and their digest; trained once into ``folder``, then read back.

    Pre-training uses every image of ``images`` (labels unused) with classic augmentation; no
    validation. ``folder`` keeps ``encoder.safetensors`` and ``pretrain.json`` (seed, digest, images,
    epochs, seconds, per-epoch training loss); an interrupted pre-training starts again.
    """
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    weights, summary = folder / "encoder.safetensors", folder / "pretrain.json"
    if weights.is_file() and summary.is_file():
        state = load_file(str(weights))
        return state, state_digest(state)
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted pre-training starts again
    started = time.perf_counter()
    state, history, epochs = pretrain_denoising_autoencoder(
        images, training, denoising, seed, folder / "run", quiet=quiet
    )
    seconds = time.perf_counter() - started
    with atomic_path(weights) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    digest = state_digest(state)
    record = {
        "seed": seed,
        "digest": digest,
        "images": int(len(images)),
        "epochs": epochs,
        "seconds": seconds,
        "train_loss": [row["train_loss"] for row in history],
        "noise_std": denoising.noise_std,
        "mask_fraction": denoising.mask_fraction,
    }
    write_text_atomic(summary, json.dumps(to_jsonable(record), indent=2) + "\n")
    if not keep_checkpoints:
        shutil.rmtree(folder / "run" / "checkpoints", ignore_errors=True)
    return state, digest


def pretrain_denoising_autoencoder(
    images: np.ndarray, training: ArrayTraining, denoising: Denoising, seed: int, run_dir: Path, *, quiet: bool = True
) -> tuple[dict[str, torch.Tensor], list[dict], int]:
    """Train ``training.model``'s trunk as a denoising autoencoder; ``(trunk state, history, epochs run)``."""
    seed_everything(seed)
    classifier = create_model(training.model, in_channels=training.channels, num_classes=2, **training.model_kwargs)
    autoencoder = build_autoencoder(classifier, training.channels, training.image_size, width=denoising.decoder_width)
    generator = make_loader_generator(seed)
    unlabelled = np.zeros(len(images), dtype=np.int64)  # the task never reads them
    loader = training.loader(images, unlabelled, generator)
    config = training.config(denoising.epochs, seed)
    task = DenoisingReconstructionTask(denoising.noise_std, denoising.mask_fraction, validation_seed=seed)
    trainer = Trainer(task, autoencoder, loader, None, config, RunDir(run_dir), generator=generator, quiet=quiet)
    fit = trainer.fit()
    return trunk_state(autoencoder), fit.history, fit.epochs_run
