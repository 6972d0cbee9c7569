"""``generate train``: images -> held-out share -> adversarial training on the engine -> sample grids -> report."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import medlearn
from medlearn.apps.classification.train import default_cache_dir
from medlearn.apps.common.request import TrainRequest
from medlearn.apps.generation.data import GenerationImages, check_enough_images, image_classes, load_generation_images
from medlearn.apps.generation.evaluate import BASELINE_FILE, report_after_training
from medlearn.apps.generation.features import feature_network
from medlearn.apps.generation.sample_grid import grid_png
from medlearn.apps.generation.settings import (
    GENERATION_TRAINING_DEFAULTS,
    GeneratorSettings,
    build_generation_model,
    read_generation_run,
)
from medlearn.apps.generation.task import AdversarialTask
from medlearn.data.sources import load_samples
from medlearn.data.splits import Split, make_split
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import make_loader_generator, seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.evaluation.baselines.generation import fit_pca_gaussian
from medlearn.utils.atomic import write_bytes_atomic

log = logging.getLogger("medlearn")

SAMPLES_DIR = "samples"
#: Samples per grid (a square grid; conditional runs cycle through the classes row by row).
GRID_SIZE = 64


class GenerationTrainRequest(TrainRequest[GeneratorSettings]):
    section = "generation"
    settings_type = GeneratorSettings
    training_defaults = GENERATION_TRAINING_DEFAULTS


@dataclass
class GenerationOutcome:
    run_dir: Path
    report: Path
    summary: dict


class SampleGridWriter:
    """Epoch hook: a grid of the averaged generator's samples from the same noise every time, so the grids
    of successive epochs show how training went (``samples/epoch_NNNN.png`` and ``samples/latest.png``)."""

    def __init__(self, folder: Path, num_classes: int, every: int = 1, count: int = GRID_SIZE, seed: int = 0) -> None:
        self.folder, self.num_classes, self.every, self.count, self.seed = folder, num_classes, every, count, seed

    def labels(self) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        side = int(np.ceil(np.sqrt(self.count)))
        return torch.tensor([(i // side) % self.num_classes for i in range(self.count)])

    def __call__(self, epoch: int, model: torch.nn.Module) -> None:
        if epoch % self.every and epoch != 1:
            return

        was_training = model.training
        model.eval()
        images = model.sample(self.count, self.labels(), generator=torch.Generator().manual_seed(self.seed))
        model.train(was_training)
        png = grid_png((images.float().cpu().numpy() + 1.0) / 2.0)
        write_bytes_atomic(self.folder / f"epoch_{epoch:04d}.png", png)
        write_bytes_atomic(self.folder / "latest.png", png)


def train_generator(request: GenerationTrainRequest, *, strict: bool = False, quiet: bool = False):
    """Fresh run: read the images, hold out a share for the validation FID, train, write grids and report."""

    settings = request.settings
    config = TrainConfig.from_dict(request.training)
    samples = load_samples(request.data)
    classes = image_classes(samples, settings, request.data)
    split = make_split(samples, val=settings.val_fraction, seed=config.seed)  # near-duplicates never straddle
    images, train, val = _read_split(split, settings, classes, strict=strict, quiet=quiet)
    check_enough_images(train, settings, request.data)
    run = RunDir.create(request.out)  # only once the data are known to be usable
    Split(list(train.samples), list(val.samples), []).to_csv(run.path / "split.csv")
    return _start_run(run, request.data, settings, config, train, val, images.skipped, quiet=quiet)


def train_generator_on_arrays(
    train: GenerationImages, out: Path, settings: GeneratorSettings, training: dict, *, quiet: bool = True
) -> GenerationOutcome:
    """Train on images already in memory (``[0, 1]`` arrays, e.g. a labelled subset in a study); the run has
    no ``split.csv``, so it cannot be resumed from files."""

    config = TrainConfig.from_dict({**GENERATION_TRAINING_DEFAULTS, **training})
    empty = train.subset([])
    return _start_run(RunDir.create(out), "in-memory images", settings, config, train, empty, [], quiet=quiet)


def _start_run(run, source: str, settings, config, train, val, skipped, *, quiet: bool) -> GenerationOutcome:
    run.write_config(
        {
            "medlearn_version": medlearn.__version__,
            "task": "generation",
            "data": {"source": source},
            "classes": train.classes,
            "generation": settings.to_dict(),
            "training": config.to_dict(),
        }
    )
    return _train_and_report(run, settings, config, train, val, skipped, quiet=quiet, resume=False)


def resume_generator(run_dir: Path, *, strict: bool = False, quiet: bool = False):
    """Continue an interrupted run from its last checkpoint with its recorded settings and images."""

    run = RunDir.open(run_dir)
    config_doc, settings = read_generation_run(run)
    config = TrainConfig.from_dict(config_doc["training"])
    split = Split.from_csv(run.path / "split.csv")
    classes = list(config_doc.get("classes") or [])
    images, train, val = _read_split(split, settings, classes, strict=strict, quiet=quiet)
    return _train_and_report(run, settings, config, train, val, images.skipped, quiet=quiet, resume=True)


def _read_split(split, settings: GeneratorSettings, classes: list[str], *, strict: bool, quiet: bool):
    """``(all images, training part, validation part)`` of a split, decoded once (cached on disk)."""

    images = load_generation_images(
        split.train + split.val,
        settings,
        classes,
        strict=strict,
        cache_dir=default_cache_dir(),
        show_progress=not quiet,
    )
    val_paths = {s.path for s in split.val}
    train_rows = [i for i, s in enumerate(images.samples) if s.path not in val_paths]
    val_rows = [i for i, s in enumerate(images.samples) if s.path in val_paths]
    return images, images.subset(train_rows), images.subset(val_rows)


def _train_and_report(run, settings, config, train, val, skipped, *, quiet: bool, resume: bool) -> GenerationOutcome:

    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    data_summary = {
        "train": train.class_counts(),
        "val": val.class_counts(),
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
    }
    run.write_json("data_summary.json", data_summary)
    baseline_file = run.path / BASELINE_FILE
    if not baseline_file.is_file():  # the classical method the generator has to beat (seconds, no training)
        fit_pca_gaussian(train.arrays, train.labels, train.classes).save(baseline_file)
    seed_everything(config.seed)
    model = build_generation_model(settings, len(train.classes))
    extractor = feature_network(settings.features, settings.channels) if len(val) else None
    task = AdversarialTask(
        model.objective,
        n_critic=settings.critic_steps,
        gp_weight=settings.gp_weight,
        ema_decay=settings.ema_decay,
        features=extractor,
    )
    generator = make_loader_generator(config.seed)
    batch_size = min(config.batch_size, len(train))
    train_loader = DataLoader(
        _tensor_set(train), batch_size=batch_size, shuffle=True, generator=generator, drop_last=True
    )
    val_loader = DataLoader(_tensor_set(val), batch_size=256) if len(val) else None
    grids = SampleGridWriter(run.path / SAMPLES_DIR, len(train.classes), every=settings.sample_every)
    trainer = Trainer(
        task, model, train_loader, val_loader, config, run, generator=generator, quiet=quiet, epoch_hooks=[grids]
    )
    result = trainer.fit(resume=resume)
    val_labels = [s.label for s in val.samples]
    report, summary = report_after_training(
        run.path, val.arrays.astype(np.float32), val_labels, result, features=extractor
    )
    return GenerationOutcome(run.path, report, summary)


def _tensor_set(images: GenerationImages) -> TensorDataset:
    return TensorDataset(torch.from_numpy(images.tanh_range()), torch.from_numpy(images.labels))
