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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from medlearn.utils.atomic import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from medlearn.apps.studies.augmentation import StudySettings


def pretrained_encoder(
    images: np.ndarray, settings: StudySettings, seed: int, folder: Path, *, quiet: bool = True
) -> tuple[dict[str, torch.Tensor], str]:
    """The seed's denoising-autoencoder trunk weights and their digest; trained once into ``folder``, then read back.

    Pre-training uses every image of ``images`` (labels unused) with classic augmentation; no
    validation. ``folder`` keeps ``encoder.safetensors`` and ``pretrain.json`` (seed, digest, images,
    epochs, seconds, per-epoch training loss); an interrupted pre-training starts again.
    """
    from safetensors.torch import load_file, save_file

    from medlearn.evaluation.classification import to_jsonable
    from medlearn.models.autoencoder import state_digest

    folder = Path(folder)
    weights, summary = folder / "encoder.safetensors", folder / "pretrain.json"
    if weights.is_file() and summary.is_file():
        state = load_file(str(weights))
        return state, state_digest(state)
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted pre-training starts again
    started = time.perf_counter()
    state, history, epochs = pretrain_denoising_autoencoder(images, settings, seed, folder / "run", quiet=quiet)
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
        "noise_std": settings.noise_std,
        "mask_fraction": settings.mask_fraction,
    }
    write_text_atomic(summary, json.dumps(to_jsonable(record), indent=2) + "\n")
    if not settings.keep_checkpoints:
        shutil.rmtree(folder / "run" / "checkpoints", ignore_errors=True)
    return state, digest


def pretrain_denoising_autoencoder(
    images: np.ndarray, settings: StudySettings, seed: int, run_dir: Path, *, quiet: bool = True
) -> tuple[dict[str, torch.Tensor], list[dict], int]:
    """Train ``settings.model``'s trunk as a denoising autoencoder; ``(trunk state, history, epochs run)``."""
    from torch.utils.data import DataLoader

    from medlearn.apps.studies.reconstruction import DenoisingReconstructionTask
    from medlearn.data.augment import build_augmentation
    from medlearn.data.dataset import ArrayClassificationDataset
    from medlearn.engine.config import TrainConfig
    from medlearn.engine.reproducibility import make_loader_generator, seed_everything
    from medlearn.engine.rundir import RunDir
    from medlearn.engine.trainer import Trainer
    from medlearn.models import create_model
    from medlearn.models.autoencoder import build_autoencoder, trunk_state

    seed_everything(seed)
    classifier = create_model(settings.model, in_channels=settings.channels, num_classes=2, **settings.model_kwargs)
    autoencoder = build_autoencoder(classifier, settings.channels, settings.image_size, width=settings.decoder_width)
    generator = make_loader_generator(seed)
    unlabelled = np.zeros(len(images), dtype=np.int64)  # the task never reads them
    dataset = ArrayClassificationDataset(
        images, unlabelled, build_augmentation(settings.modality or "OT", spatial_dims=2)
    )
    loader = DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=generator,
        drop_last=len(dataset) > settings.batch_size,
    )
    config = TrainConfig(
        epochs=settings.pretrain_epochs,
        batch_size=settings.batch_size,
        lr=settings.pretrain_lr,
        weight_decay=settings.weight_decay,
        warmup_epochs=settings.warmup_share * settings.pretrain_epochs,
        grad_clip=1.0,
        seed=seed,
        max_minutes=settings.pretrain_minutes,
        fit_schedule_to_budget=settings.pretrain_minutes is not None,
        channels_last=True,
        precision=settings.precision,
        num_threads=settings.num_threads,
    )
    task = DenoisingReconstructionTask(settings.noise_std, settings.mask_fraction, validation_seed=seed)
    trainer = Trainer(task, autoencoder, loader, None, config, RunDir(run_dir), generator=generator, quiet=quiet)
    fit = trainer.fit()
    return trunk_state(autoencoder), fit.history, fit.epochs_run
