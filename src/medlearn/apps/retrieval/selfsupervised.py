"""``retrieve index`` on images without labels: a retrieval embedding learned self-supervised (SimCLR), on the one
engine: images -> duplicate-aware hold-out -> normalisation chosen from the data -> cached arrays -> two views per
image -> :class:`~medlearn.apps.retrieval.contrastive_task.ContrastiveTask` -> run folder.

The run folder holds ``config.yaml`` (task ``retrieval``, the ``classification``-style preprocessing settings the
embedder re-applies, the model ``retrieval-simclr`` with its base), ``split.csv``, checkpoints (best by validation
NT-Xent loss), ``metrics.csv``/``.json`` and ``validation.json``. Labels, when the CSV has them, are not used.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torch.utils.data import DataLoader, TensorDataset

import medlearn
from medlearn.apps.classification.data import choose_normalization
from medlearn.apps.classification.settings import ClassifierSettings
from medlearn.apps.classification.train import default_cache_dir
from medlearn.apps.common.run_info import announce
from medlearn.apps.retrieval.contrastive_task import ContrastiveTask
from medlearn.apps.retrieval.views import TwoViewDataset, fixed_views
from medlearn.data.preload import preload
from medlearn.data.sources import load_samples
from medlearn.data.splits import make_split
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import make_loader_generator, seed_everything
from medlearn.engine.rundir import RunDir
from medlearn.engine.trainer import Trainer
from medlearn.errors import MedlearnError
from medlearn.models import create_model, model_defaults

MODEL = "retrieval-simclr"
TASK = "retrieval"
#: SimCLR wants many negatives per step; 128 images (256 views) fit a 2-core CPU's step well.
SELF_SUPERVISED_TRAINING_DEFAULTS = {
    "default_epochs": 60,
    "batch_size": 128,
    "lr": 2e-3,
    "weight_decay": 0.05,
    "warmup_epochs": 2.0,
    "grad_clip": 1.0,
    "early_stopping_patience": None,  # the validation loss is not the retrieval goal; a granted budget is used
    "channels_last": True,
    "precision": "auto",
}


def train_self_supervised(
    data: str,
    out: Path,
    *,
    base: str | None = None,
    max_minutes: float | None = None,
    epochs: int | None = None,
    modality: str | None = None,
    image_size: int | None = None,
    temperature: float = 0.2,
    seed: int = 0,
    quiet: bool = False,
) -> Path:
    """Train ``retrieval-simclr`` on the images of ``data`` (labels ignored) into ``out``; returns ``out``."""
    training = {**SELF_SUPERVISED_TRAINING_DEFAULTS, "seed": seed, "max_minutes": max_minutes, "epochs": epochs}
    config = TrainConfig.from_dict(training)
    kwargs = {"base": base} if base else {}
    kwargs = {**model_defaults(MODEL, exclude=("in_channels",)), **kwargs}
    settings = ClassifierSettings(model=MODEL, model_kwargs=kwargs, modality=modality, test_fraction=0.0)
    if image_size is not None:
        settings = replace(settings, image_size=image_size)
    samples = load_samples(data, labelled=False)
    if len(samples) < 8:
        raise MedlearnError(f"self-supervised training needs at least 8 images, got {len(samples)}", data)
    split = make_split(samples, val=0.1, seed=seed, stratify=False)
    settings = choose_normalization(split.train, settings, seed)
    announce(f"normalization {settings.normalization}: {settings.normalization_reason}", quiet=quiet)
    train = preload(split.train, settings.preprocessing, cache_dir=default_cache_dir())
    val = preload(split.val, settings.preprocessing, cache_dir=default_cache_dir())
    run = RunDir.create(out)
    split.to_csv(run.path / "split.csv")
    run.write_config(
        {
            "medlearn_version": medlearn.__version__,
            "task": TASK,
            "data": {"source": data, "skipped": [{"path": p, "reason": r} for p, r in train.skipped + val.skipped]},
            "classification": settings.to_dict(),
            "self_supervised": {"temperature": temperature, "views": "medlearn.apps.retrieval.views"},
            "training": config.to_dict(),
        }
    )
    seed_everything(config.seed)
    model = create_model(MODEL, in_channels=settings.channels, **settings.model_kwargs)
    generator = make_loader_generator(config.seed)
    views = TwoViewDataset(train.arrays, settings.modality)
    loader = DataLoader(
        views, batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=len(views) > config.batch_size
    )
    val_loader = DataLoader(TensorDataset(*fixed_views(val.arrays, settings.modality, seed)), batch_size=256)
    result = Trainer(ContrastiveTask(temperature), model, loader, val_loader, config, run, generator=generator,
                     quiet=quiet).fit()  # fmt: skip
    best = next((row for row in result.history if row["epoch"] == result.best_epoch), result.history[-1])
    run.write_json(
        "validation.json",
        {
            "best_epoch": result.best_epoch,
            "epochs": result.epochs_run,
            "stopped": result.stopped_reason,
            "best": {key.removeprefix("val_"): value for key, value in best.items() if key.startswith("val_")},
        },
    )
    return run.path


def load_encoder(run_dir: Path, checkpoint: str = "best"):
    """The trained encoder and the preprocessing it was trained with, from a self-supervised run folder."""
    from medlearn.apps.classification.model import weights_path
    from medlearn.engine.checkpoint import load_weights
    from medlearn.utils.yaml_files import read_yaml

    config = read_yaml(Path(run_dir) / "config.yaml")
    if config.get("task") != TASK or "classification" not in config:
        raise MedlearnError("not a self-supervised retrieval run (config.yaml task is not 'retrieval')", run_dir)
    settings = ClassifierSettings.from_dict(config["classification"])
    model = create_model(settings.model, in_channels=settings.channels, **settings.model_kwargs)
    load_weights(model, weights_path(Path(run_dir), checkpoint))
    return model.eval(), settings.preprocessing


def is_self_supervised_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` was written by :func:`train_self_supervised` (else: a classification run)."""
    from medlearn.utils.yaml_files import read_yaml

    path = Path(run_dir) / "config.yaml"
    return path.is_file() and read_yaml(path).get("task") == TASK
