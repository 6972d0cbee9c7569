"""Does synthetic data or unsupervised pre-training help when labels are scarce? (METHODS gen-augment, pretrain-ae)

The study of Frid-Adar et al. (2018), on any labelled image set (Br35H by default):

1. near-duplicates are grouped (perceptual hash) and ONE fixed, duplicate-aware, label-stratified
   train/test split is made (``test_fraction``, ``split_seed``); the test part is never trained on;
2. for every seed, the labelled training subsets at each label fraction are drawn per class as
   whole duplicate groups in a seeded random order
   (:func:`~medlearn.data.label_subsets.nested_label_subsets`): the subsets of
   one seed are nested (5% ⊂ 10% ⊂ 25% ⊂ 100%), and a group is never split;
3. per (seed, fraction) each arm trains the same classifier (``model``, default the project's best,
   ``cls-multires``) with the engine's :class:`~medlearn.engine.trainer.Trainer` and
   :class:`~medlearn.apps.classification.task.ClassificationTask`, then is scored on the fixed test set:

   - ``classic``: the labelled subset, classic augmentation (flips, affine, contrast, noise);
   - ``gan``: the same plus class-conditional synthetic images from a :class:`Synthesizer` fitted on
     the labelled subset only (``synthetic_ratio`` synthetic images per real one, per class), the
     synthetic images augmented like the real ones;
   - ``pretrain-ae``: the classifier's own feature trunk is first pre-trained as the encoder of a
     denoising autoencoder on ALL training images (labels unused; once per seed), then the whole
     classifier is fine-tuned on the labelled subset as in ``classic``.

   Classifiers of one seed start from the same random initialisation in every arm (the
   ``pretrain-ae`` trunk then being overwritten), so per-seed differences between arms are paired.

Training budget: no validation split. With 5% of Br35H's labels a validation share would hold about
20 images, too few to pick an epoch and costly to take from training; instead every run trains for
a fixed number of optimisation steps and the last weights are evaluated. The budget is
``max(min_steps, epochs x steps per epoch of the real labelled subset)`` steps, the same for every
arm at a given fraction (the ``gan`` arm, with more images per epoch, runs fewer epochs; runs are
whole epochs, so the steps agree up to rounding, and a budget below one epoch still trains one), so
an arm never wins by training longer. The steps each run took are in ``runs.csv``.
``minutes_per_run`` optionally caps each run (the cosine schedule is then fitted to the budget).

Statistics: per (arm, fraction), mean and two-sided t-interval (``confidence``, default 95%) over
seeds of test accuracy, sensitivity and specificity. The interval reflects the variability from
the labelled subset drawn and training randomness; the test set is fixed and shared, so test-set
sampling error is not in it (per-run test metrics are in ``runs.csv``). Arms are compared with the
paired per-seed difference to ``classic`` and its t-interval: "helped" if the accuracy interval
lies above 0, "hurt" if below, otherwise "no significant difference" (fewer than 2 seeds:
"undetermined").

Outputs in ``out_dir`` (written atomically): ``runs.csv`` (one row per finished run, rewritten
after each run, so an interrupted study resumes at the next unfinished (arm, fraction, seed)),
``study.json`` (strict JSON), ``report.html``, ``split.csv``, ``subsets.json`` (labelled
subset indices into the training part of ``split.csv``), ``study_settings.json``, and per run
``runs/<arm>/f<fraction>-s<seed>/`` (engine logs, metrics, ``result.json``).

``image_size`` defaults to 64 (not the classifier default 128): on 2 CPU cores the full study is
dozens of trainings plus GAN fits, and 64 px is about 4x cheaper per step.

This module is the protocol (settings, data, the loop over runs, the study document); its parts live
where other studies can use them: labelled subsets in :mod:`medlearn.data.label_subsets`, fixed-budget
training on arrays in :mod:`medlearn.apps.classification.arrays`, the denoising pre-training in
:mod:`medlearn.apps.studies.pretraining`, intervals and verdicts in :mod:`medlearn.evaluation.seed_statistics`,
``runs.csv`` in :mod:`medlearn.apps.studies.runs` and ``report.html`` in
:mod:`medlearn.apps.studies.report`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from medlearn.apps.classification.arrays import ArrayTraining, train_classifier_on_arrays
from medlearn.apps.classification.data import labelled_classes, split_with_duplicate_groups
from medlearn.apps.classification.model import TrainedClassifier, positive_index
from medlearn.apps.classification.settings import DEFAULT_MODEL, ClassifierSettings
from medlearn.apps.classification.train import default_cache_dir
from medlearn.apps.studies.pretraining import Denoising, pretrained_encoder
from medlearn.apps.studies.runs import REPORTED_METRICS, read_runs, run_directory, run_key, write_runs
from medlearn.data.label_subsets import nested_label_subsets
from medlearn.data.preload import preload
from medlearn.data.sources import load_samples
from medlearn.data.splits import Split
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.classification import fit_classification_baseline
from medlearn.evaluation.classification import classification_metrics, to_jsonable
from medlearn.evaluation.seed_statistics import mean_interval, paired_difference, verdict
from medlearn.utils.atomic import atomic_path, write_text_atomic
from medlearn.utils.settings import settings_from_dict

log = logging.getLogger("medlearn")

#: ``non-deep``: the classical baseline (logistic regression on intensity, texture and edge features) fitted on the
#: same labelled subset; a CNN arm that does not beat it at a label share is not worth training there.
ARMS: tuple[str, ...] = ("classic", "gan", "pretrain-ae", "non-deep")
BASELINE = "classic"
#: Settings that do not change any run's result: a resumed study may change them.
NOT_AFFECTING_RUNS = (
    *("fractions", "seeds", "arms", "target_fraction", "target_points", "confidence"),
    *("num_threads", "keep_checkpoints"),
)

#: ``sampler({label: count, ...}) -> images``: ``sum(counts)`` images, ``(N, C, H, W)`` float, the first
#: ``counts[k0]`` of label ``k0``, then those of the next key, in the dict's order.
Sampler = Callable[[dict[int, int]], np.ndarray]


class Synthesizer(Protocol):
    """Fits a class-conditional generator on a labelled subset and returns a sampler.

    ``train_images``: ``(N, C, H, W)`` float32, exactly as the classifier's preprocessing gives them
    (for MR: z-scored intensities, side ``image_size``); ``train_labels``: ``(N,)`` int64 class indices
    (into the sorted class names); ``seed``: the study seed (fit and sample reproducibly from it);
    ``work_dir``: an existing folder of this (seed, fraction) that persists across resumed studies
    (for checkpoints, logs, caches). The returned sampler is called once, with ``{label: count}``
    for every class, and must return ``sum(counts.values())`` images of shape ``(C, H, W)``, finite
    floats, grouped by label in the dict's order (see :data:`Sampler`).
    """

    def __call__(self, train_images: np.ndarray, train_labels: np.ndarray, seed: int, work_dir: Path) -> Sampler: ...


@dataclass
class StudySettings:
    """Everything that defines the study; stored in ``study_settings.json`` and ``study.json``."""

    #: ``"br35h"``, a CSV manifest (``path,label[,group]``) or a folder of class sub-folders.
    data: str = "br35h"
    fractions: tuple[float, ...] = (0.05, 0.10, 0.25, 1.0)
    #: Number of seeds (0, 1, ..., seeds - 1): labelled subset, initialisation, training, pre-training, GAN.
    seeds: int = 3
    arms: tuple[str, ...] = ARMS
    model: str = DEFAULT_MODEL
    model_kwargs: dict = field(default_factory=dict)
    #: 64 px by default for CPU speed (about 4x cheaper than the classifier default 128).
    image_size: int = 64
    channels: int = 1
    #: Br35H JPGs say "OT"; "MR" gives MR normalisation (percentile + z-score). None trusts each file.
    modality: str | None = "MR"
    positive: str | None = None
    test_fraction: float = 0.2
    split_seed: int = 0
    group_duplicates: bool = True
    duplicate_threshold: int | None = None
    #: Epochs over the real labelled subset; with ``min_steps`` this sets every arm's step budget.
    epochs: int = 30
    min_steps: int = 500
    minutes_per_run: float | None = None
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    #: Share of the steps spent on linear warm-up.
    warmup_share: float = 0.05
    precision: str = "auto"
    #: Synthetic images per real labelled image of the same class (gan arm).
    synthetic_ratio: float = 1.0
    pretrain_epochs: int = 20
    pretrain_minutes: float | None = None
    pretrain_lr: float = 2e-3
    noise_std: float = 0.3
    mask_fraction: float = 0.25
    decoder_width: int = 64
    #: torch threads while training (None: torch's default, one per core).
    num_threads: int | None = None
    #: Keep each run's checkpoints (otherwise deleted after evaluation; ``result.json`` keeps the outcome).
    keep_checkpoints: bool = False
    target_fraction: float = 0.10
    #: The issue's target: GAN-augmented beats classic by at least this many accuracy points at ``target_fraction``.
    target_points: float = 2.0
    confidence: float = 0.95

    def training(self) -> ArrayTraining:
        """How every arm's classifier is trained (the same budget for all arms)."""
        return ArrayTraining(
            model=self.model,
            model_kwargs=dict(self.model_kwargs),
            channels=self.channels,
            image_size=self.image_size,
            modality=self.modality,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_share=self.warmup_share,
            precision=self.precision,
            num_threads=self.num_threads,
            minutes=self.minutes_per_run,
        )

    def pretraining(self) -> ArrayTraining:
        """How the autoencoder's trunk is pre-trained (its own learning rate and budget)."""
        return replace(self.training(), lr=self.pretrain_lr, minutes=self.pretrain_minutes)

    def denoising(self) -> Denoising:
        return Denoising(self.pretrain_epochs, self.noise_std, self.mask_fraction, self.decoder_width)

    def __post_init__(self) -> None:
        self.fractions = tuple(sorted({float(f) for f in self.fractions}))
        self.arms = tuple(dict.fromkeys(self.arms))
        if not self.fractions or not all(0 < f <= 1 for f in self.fractions):
            raise MedlearnError(f"label fractions must be in (0, 1], got {self.fractions}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms:
            raise MedlearnError(f"unknown arm(s) {unknown or self.arms}; choose from {', '.join(ARMS)}")
        if self.seeds < 1:
            raise MedlearnError(f"seeds must be at least 1, got {self.seeds}")
        if not 0 < self.test_fraction < 1:
            raise MedlearnError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.synthetic_ratio <= 0:
            raise MedlearnError(f"synthetic_ratio must be > 0, got {self.synthetic_ratio}")
        if not 0 < self.confidence < 1:
            raise MedlearnError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.epochs < 1 or self.pretrain_epochs < 1 or self.min_steps < 0 or self.batch_size < 1:
            raise MedlearnError("epochs, pretrain_epochs and batch_size must be >= 1 and min_steps >= 0")

    def to_dict(self) -> dict:
        values = asdict(self)
        values["fractions"] = list(self.fractions)
        values["arms"] = list(self.arms)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> StudySettings:

        values = dict(values)
        for key in ("fractions", "arms"):
            if key in values:
                values[key] = tuple(values[key])
        return settings_from_dict(cls, values, "augmentation study")

    @property
    def seed_values(self) -> list[int]:
        return list(range(self.seeds))

    def classifier_settings(self):

        return ClassifierSettings(
            model=self.model,
            model_kwargs=dict(self.model_kwargs),
            image_size=self.image_size,
            channels=self.channels,
            modality=self.modality,
            val_fraction=0.0,
            test_fraction=self.test_fraction,
            duplicate_threshold=self.duplicate_threshold,
            group_duplicates=self.group_duplicates,
            positive=self.positive,
        )


@dataclass
class StudyData:
    """The fixed split after decoding: training part (all of it, labels hidden from pre-training) and test part."""

    classes: list[str]
    positive: int
    train_arrays: np.ndarray
    train_labels: np.ndarray
    train_groups: list[str]
    test_arrays: np.ndarray
    test_labels: np.ndarray
    info: dict


@dataclass
class StudyResult:
    """What :func:`run_study` measured (all rows of ``runs.csv`` asked for) and what this call did."""

    out_dir: Path
    document: dict
    trained: list[tuple[str, float, int]]
    skipped: list[tuple[str, float, int]]

    @property
    def runs(self) -> list[dict]:
        return self.document["runs"]

    @property
    def summary(self) -> list[dict]:
        return self.document["summary"]

    @property
    def comparisons(self) -> list[dict]:
        return self.document["comparisons"]

    @property
    def target(self) -> dict:
        return self.document["target"]

    @property
    def study_json(self) -> Path:
        return self.out_dir / "study.json"

    @property
    def runs_csv(self) -> Path:
        return self.out_dir / "runs.csv"

    @property
    def report(self) -> Path:
        return self.out_dir / "report.html"


# ---------------------------------------------------------------------------------------------
# The study


def run_study(
    settings: StudySettings,
    out_dir: str | Path,
    synthesizer_factory: Synthesizer | None = None,
    quiet: bool = True,
) -> StudyResult:
    """Run (or resume) the study into ``out_dir``; rows already in ``runs.csv`` are not trained again."""
    out = Path(out_dir)
    if "gan" in settings.arms and synthesizer_factory is None:
        raise MedlearnError("the gan arm needs a synthesizer (synthesizer_factory); or leave 'gan' out of arms")
    synthesizer_name = _callable_name(synthesizer_factory) if synthesizer_factory is not None else ""
    out.mkdir(parents=True, exist_ok=True)
    _check_compatible(out, settings)
    data = load_study_data(settings, out, quiet=quiet)
    rows = read_runs(out / "runs.csv")
    _check_synthesizer(rows, synthesizer_name)
    done = {run_key(r["arm"], r["fraction"], r["seed"]) for r in rows}
    subsets = {
        seed: nested_label_subsets(data.train_groups, data.train_labels, settings.fractions, seed)
        for seed in settings.seed_values
    }
    _write_subsets(out / "subsets.json", subsets)
    trained: list[tuple[str, float, int]] = []
    skipped: list[tuple[str, float, int]] = []
    for seed in settings.seed_values:
        for fraction in settings.fractions:
            for arm in settings.arms:
                if run_key(arm, fraction, seed) in done:
                    skipped.append((arm, fraction, seed))
                    continue
                _say(f"augmentation study: {arm} at {fraction:.0%} labels, seed {seed}", quiet)
                row = _run_one(
                    arm,
                    fraction,
                    seed,
                    subsets[seed][fraction],
                    data,
                    settings,
                    out,
                    synthesizer_factory,
                    synthesizer_name,
                    quiet,
                )
                rows.append(row)
                write_runs(out / "runs.csv", rows, ARMS)
                trained.append((arm, fraction, seed))
                _say(
                    f"  accuracy {row['accuracy']:.3f}, sensitivity {row['sensitivity']:.3f}, specificity "
                    f"{row['specificity']:.3f} ({row['steps']} steps, {row['train_seconds']:.0f} s)",
                    quiet,
                )
    document = summarise(rows, settings, data, out, synthesizer_name)
    write_text_atomic(out / "study.json", json.dumps(document, indent=2, allow_nan=False) + "\n")
    from medlearn.apps.studies.report import write_study_report  # loads matplotlib

    write_study_report(out / "report.html", document, out)
    return StudyResult(out, document, trained, skipped)


def load_study_data(settings: StudySettings, out: Path | None = None, *, quiet: bool = True) -> StudyData:
    """Samples -> near-duplicate groups -> one fixed train/test split -> decoded arrays (cached on disk)."""

    classifier_settings = settings.classifier_settings()
    samples = load_samples(settings.data)
    classes = labelled_classes(samples, settings.data)
    split = split_with_duplicate_groups(samples, classifier_settings, settings.split_seed)
    everything = split.train + split.test
    loaded = preload(
        everything,
        classifier_settings.preprocessing,
        cache_dir=default_cache_dir(),
        show_progress=not quiet,
    )
    kept = {id(s): i for i, s in enumerate(loaded.samples)}
    train = [s for s in split.train if id(s) in kept]
    test = [s for s in split.test if id(s) in kept]
    if not train or not test:
        raise MedlearnError("the training or the test part has no readable images", settings.data)
    index = {name: i for i, name in enumerate(classes)}
    if out is not None:
        Split(train=train, test=test).to_csv(out / "split.csv")
    train_labels = np.array([index[s.label] for s in train], dtype=np.int64)
    test_labels = np.array([index[s.label] for s in test], dtype=np.int64)
    dup_groups = {s.group for s in everything if s.group and s.group.startswith("dup:")}
    info = {
        "source": str(settings.data),
        "classes": classes,
        "positive_class": classes[positive_index(classes, settings.positive)],
        "n_train": len(train),
        "n_test": len(test),
        "train_counts": {c: int((train_labels == i).sum()) for i, c in enumerate(classes)},
        "test_counts": {c: int((test_labels == i).sum()) for i, c in enumerate(classes)},
        "train_groups": len({s.group_key for s in train}),
        "duplicate_groups": len(dup_groups),
        "images_in_duplicate_groups": sum(1 for s in everything if s.group in dup_groups),
        "skipped": [{"path": p, "reason": r} for p, r in loaded.skipped],
    }
    return StudyData(
        classes=classes,
        positive=positive_index(classes, settings.positive),
        train_arrays=loaded.arrays[[kept[id(s)] for s in train]],
        train_labels=train_labels,
        train_groups=[s.group_key for s in train],
        test_arrays=loaded.arrays[[kept[id(s)] for s in test]],
        test_labels=test_labels,
        info=info,
    )


def _run_one(
    arm: str,
    fraction: float,
    seed: int,
    subset: np.ndarray,
    data: StudyData,
    settings: StudySettings,
    out: Path,
    synthesizer_factory: Synthesizer | None,
    synthesizer_name: str,
    quiet: bool,
) -> dict:
    run_dir = run_directory(out, arm, fraction, seed)
    if run_dir.exists():  # an unfinished attempt (no row in runs.csv): start it again
        shutil.rmtree(run_dir)
    images = data.train_arrays[subset].astype(np.float32)
    labels = data.train_labels[subset]
    steps = step_budget(len(labels), settings)
    extra_images = np.zeros((0, *images.shape[1:]), np.float32)
    extra_labels = np.zeros(0, np.int64)
    synthesis_seconds = 0.0
    init_state = None
    init = "random"
    if arm == "gan":
        started = time.perf_counter()
        work_dir = out / "synthesizer" / f"f{fraction:g}-s{seed}"
        extra_images, extra_labels = synthesize(
            synthesizer_factory, images, labels, len(data.classes), seed, settings.synthetic_ratio, work_dir
        )
        synthesis_seconds = time.perf_counter() - started
        run_dir.mkdir(parents=True, exist_ok=True)
        _save_preview(run_dir / "synthetic_preview.npz", extra_images, extra_labels, images, labels)
    elif arm == "pretrain-ae":
        init_state, _ = pretrained_encoder(
            data.train_arrays,
            settings.pretraining(),
            settings.denoising(),
            seed,
            pretrain_directory(out, seed),
            keep_checkpoints=settings.keep_checkpoints,
            quiet=quiet,
        )
        init = "dae"
    if arm == "non-deep":
        return _non_deep_row(fraction, seed, images, labels, data, run_dir)
    train_images = np.concatenate([images, extra_images]) if len(extra_labels) else images
    train_labels = np.concatenate([labels, extra_labels]) if len(extra_labels) else labels
    started = time.perf_counter()
    model, epochs, steps_run, init_digest = train_classifier_on_arrays(
        train_images,
        train_labels,
        len(data.classes),
        data.positive,
        settings.training(),
        seed,
        steps,
        run_dir,
        init_state=init_state,
        quiet=quiet,
    )
    train_seconds = time.perf_counter() - started
    metrics, probs = evaluate_on_test(model, data, settings)
    if not settings.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    row = {
        "arm": arm,
        "fraction": float(fraction),
        "seed": int(seed),
        "n_labelled": int(len(labels)),
        "labelled_per_class": " ".join(f"{c}={int((labels == i).sum())}" for i, c in enumerate(data.classes)),
        "n_synthetic": int(len(extra_labels)),
        "n_train": int(len(train_labels)),
        "epochs": int(epochs),
        "steps": int(steps_run),
        "init": f"{init}:{init_digest}" if init_digest else init,
        "synthesizer": synthesizer_name if arm == "gan" else "",
        **{
            name: float(metrics[name])
            for name in ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "auc")
        },
        "n_test": int(len(data.test_labels)),
        "train_seconds": float(train_seconds),
        "synthesis_seconds": float(synthesis_seconds),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    result = {"row": row, "test_prob_positive": probs[:, data.positive].round(5).tolist()}
    write_text_atomic(run_dir / "result.json", json.dumps(_strict(result), indent=1) + "\n")
    return row


def pretrain_directory(out: Path, seed: int) -> Path:
    """The seed's denoising pre-training (``encoder.safetensors``, ``pretrain.json``, engine run)."""
    return Path(out) / "pretrain" / f"seed{seed}"


def step_budget(n_labelled: int, settings: StudySettings) -> int:
    """Optimisation steps of every arm at a fraction: ``max(min_steps, epochs x batches of the real subset)``."""
    per_epoch = _batches(n_labelled, settings.batch_size)
    return max(settings.min_steps, settings.epochs * per_epoch)


def _batches(n: int, batch_size: int) -> int:
    return n // batch_size if n > batch_size else 1  # the loaders drop the last partial batch


def synthesize(
    factory: Synthesizer,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    seed: int,
    ratio: float,
    work_dir: Path,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``factory`` on the labelled subset and draw ``round(ratio x real count)`` images per class."""
    work_dir.mkdir(parents=True, exist_ok=True)
    counts = {k: int(round(ratio * int((labels == k).sum()))) for k in range(num_classes)}
    counts = {k: v for k, v in counts.items() if v > 0}
    sampler = factory(images, labels, seed, work_dir)
    synthetic = np.asarray(sampler(dict(counts)))
    expected = (sum(counts.values()), *images.shape[1:])
    if synthetic.shape != expected:
        raise MedlearnError(f"the synthesizer returned images of shape {synthetic.shape}, expected {expected}")
    if not np.issubdtype(synthetic.dtype, np.floating) or not np.isfinite(synthetic).all():
        raise MedlearnError("the synthesizer returned non-float or non-finite images")
    synthetic_labels = np.concatenate([np.full(n, k, dtype=np.int64) for k, n in counts.items()])
    return synthetic.astype(np.float32), synthetic_labels


def _non_deep_row(
    fraction: float, seed: int, images: np.ndarray, labels: np.ndarray, data: StudyData, run_dir: Path
) -> dict:
    """The classical baseline on the labelled subset: fitted in seconds, scored on the same test images."""
    started = time.perf_counter()
    baseline = fit_classification_baseline(images, labels, data.classes, seed=seed)
    train_seconds = time.perf_counter() - started
    probs = baseline.probabilities(data.test_arrays.astype(np.float32))
    metrics = classification_metrics(data.test_labels, probs, positive=data.positive)
    row = {
        "arm": "non-deep",
        "fraction": float(fraction),
        "seed": int(seed),
        "n_labelled": int(len(labels)),
        "labelled_per_class": " ".join(f"{c}={int((labels == i).sum())}" for i, c in enumerate(data.classes)),
        "n_synthetic": 0,
        "n_train": int(len(labels)),
        "epochs": 0,
        "steps": 0,
        "init": baseline.name,
        "synthesizer": "",
        **{
            name: float(metrics[name])
            for name in ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "auc")
        },
        "n_test": int(len(data.test_labels)),
        "train_seconds": float(train_seconds),
        "synthesis_seconds": 0.0,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    result = {"row": row, "test_prob_positive": probs[:, data.positive].round(5).tolist()}
    write_text_atomic(run_dir / "result.json", json.dumps(_strict(result), indent=1) + "\n")
    return row


def evaluate_on_test(model: torch.nn.Module, data: StudyData, settings: StudySettings) -> tuple[dict, np.ndarray]:
    """Test-set metrics (positive class = ``data.positive``) and the class probabilities."""

    classifier = TrainedClassifier(
        model, data.classes, settings.classifier_settings().preprocessing, precision=settings.precision
    )
    probs = classifier.probabilities(data.test_arrays, calibrated=False)
    return classification_metrics(data.test_labels, probs, positive=data.positive), probs


# ---------------------------------------------------------------------------------------------
# Resuming, settings, bookkeeping


def _check_compatible(out: Path, settings: StudySettings) -> None:
    """A resumed study must have the settings that produced its rows (arms, fractions, seeds may grow)."""
    path = out / "study_settings.json"
    current = {k: v for k, v in _strict(settings.to_dict()).items() if k not in NOT_AFFECTING_RUNS}
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise MedlearnError(f"not readable JSON ({error})", path) from None
        differing = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        if differing:
            detail = ", ".join(f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in differing)
            raise MedlearnError(
                f"this folder holds a study with other settings ({detail}); choose another out folder", out
            )
        return
    if (out / "runs.csv").is_file():
        raise MedlearnError("runs.csv exists without study_settings.json; choose another out folder", out)
    write_text_atomic(path, json.dumps(current, indent=2) + "\n")


def _check_synthesizer(rows: Sequence[dict], name: str) -> None:
    used = sorted({r["synthesizer"] for r in rows if r["arm"] == "gan" and r["synthesizer"]})
    if name and used and used != [name]:
        raise MedlearnError(f"runs.csv has gan rows made with synthesizer {used}, not {name!r}; use another out folder")


def _callable_name(obj: Any) -> str:
    target = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


def _write_subsets(path: Path, subsets: dict[int, dict[float, np.ndarray]]) -> None:
    document = {
        "indices_into": "the train rows of split.csv, in order",
        "subsets": {str(seed): {f"{f:g}": idx.tolist() for f, idx in per.items()} for seed, per in subsets.items()},
    }
    write_text_atomic(path, json.dumps(document) + "\n")


def _save_preview(
    path: Path, synthetic: np.ndarray, labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray, per_class: int = 4
) -> None:
    """A few synthetic images per class, and real ones of the same classes, for the report."""

    def pick(values: np.ndarray) -> np.ndarray:
        return np.concatenate([np.flatnonzero(values == k)[:per_class] for k in np.unique(values)]).astype(np.int64)

    chosen, real_chosen = pick(labels), pick(real_labels)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            images=synthetic[chosen].astype(np.float16),
            labels=labels[chosen],
            real_images=real[real_chosen].astype(np.float16),
            real_labels=real_labels[real_chosen],
        )


def _say(message: str, quiet: bool) -> None:
    log.info(message)
    if not quiet:
        print(message, flush=True)


def _strict(value: Any) -> Any:
    """JSON-safe copy: numpy values unwrapped, NaN/inf as None, tuples as lists."""

    return to_jsonable(value)


# ---------------------------------------------------------------------------------------------
# The study document


def summarise(rows: Sequence[dict], settings: StudySettings, data: StudyData, out: Path, synthesizer: str) -> dict:
    """The study document (``study.json``) from the rows of the asked arms x fractions x seeds."""
    wanted = {run_key(a, f, s) for a in settings.arms for f in settings.fractions for s in settings.seed_values}
    runs = [r for r in rows if run_key(r["arm"], r["fraction"], r["seed"]) in wanted]
    by_cell: dict[tuple[str, str], dict[int, dict]] = {}
    for r in runs:
        by_cell.setdefault((r["arm"], f"{r['fraction']:g}"), {})[r["seed"]] = r
    summary = []
    for arm in settings.arms:
        for fraction in settings.fractions:
            cell = by_cell.get((arm, f"{fraction:g}"), {})
            entry: dict[str, Any] = {
                "arm": arm,
                "fraction": fraction,
                "seeds": sorted(cell),
                "n_labelled_mean": float(np.mean([r["n_labelled"] for r in cell.values()])) if cell else None,
            }
            for metric in REPORTED_METRICS:
                values = [cell[s][metric] for s in sorted(cell)]
                entry[metric] = {**mean_interval(values, settings.confidence, bounds=(0.0, 1.0)), "values": values}
            summary.append(entry)
    comparisons = []
    for arm in (a for a in settings.arms if a != BASELINE):
        if BASELINE not in settings.arms:
            break
        for fraction in settings.fractions:
            base = by_cell.get((BASELINE, f"{fraction:g}"), {})
            other = by_cell.get((arm, f"{fraction:g}"), {})
            paired = sorted(set(base) & set(other))
            entry = {"arm": arm, "baseline": BASELINE, "fraction": fraction, "seeds": paired}
            for metric in REPORTED_METRICS:
                entry[f"{metric}_difference"] = paired_difference(
                    {s: r[metric] for s, r in base.items()},
                    {s: r[metric] for s, r in other.items()},
                    settings.confidence,
                )
            entry["verdict"] = verdict(entry["accuracy_difference"])
            comparisons.append(entry)
    document = {
        "study": "label-scarce augmentation study (METHODS gen-augment, pretrain-ae)",
        "settings": settings.to_dict(),
        "synthesizer": synthesizer or None,
        "data": data.info,
        "method": _method_text(settings),
        "summary": summary,
        "comparisons": comparisons,
        "target": evaluate_target(comparisons, settings),
        "pretraining": _pretraining_records(out, settings),
        "timing": {
            "train_seconds": float(sum(r["train_seconds"] for r in runs)),
            "synthesis_seconds": float(sum(r["synthesis_seconds"] for r in runs)),
        },
        "runs": runs,
    }
    document["timing"]["pretrain_seconds"] = float(sum(p.get("seconds") or 0 for p in document["pretraining"]))
    return _strict(document)


def evaluate_target(comparisons: Sequence[dict], settings: StudySettings) -> dict:
    """The issue's target (gan beats classic by ``target_points`` at ``target_fraction``): status and statement."""
    points = settings.target_points / 100
    rule = (
        f"met: the mean paired accuracy gain of gan over classic at {settings.target_fraction:.0%} labels is at least "
        f"{settings.target_points:g} points and its {settings.confidence:.0%} interval excludes 0; not met: the "
        f"interval's upper end is below {settings.target_points:g} points (such a gain is ruled out); otherwise "
        "inconclusive"
    )
    target: dict[str, Any] = {
        "fraction": settings.target_fraction,
        "points": settings.target_points,
        "rule": rule,
        "status": "not evaluated",
        "difference": None,
    }
    match = [c for c in comparisons if c["arm"] == "gan" and math.isclose(c["fraction"], settings.target_fraction)]
    if not match or match[0]["accuracy_difference"]["mean"] is None:
        target["statement"] = (
            f"not evaluated: the study has no gan-vs-classic pair at {settings.target_fraction:.0%} labels"
        )
        return target
    diff = match[0]["accuracy_difference"]
    target["difference"] = diff
    if diff["low"] is None:
        status = "inconclusive"
    elif diff["mean"] >= points and diff["low"] > 0:
        status = "met"
    elif diff["high"] < points:
        status = "not met"
    else:
        status = "inconclusive"
    target["status"] = status
    target["interval_above_target"] = bool(diff["low"] is not None and diff["low"] >= points)
    interval = (
        f"{settings.confidence:.0%} interval {100 * diff['low']:+.1f} to {100 * diff['high']:+.1f}"
        if diff["low"] is not None
        else "no interval (one seed)"
    )
    target["statement"] = (
        f"At {settings.target_fraction:.0%} labels GAN augmentation changed accuracy by {100 * diff['mean']:+.1f} "
        f"points vs classic augmentation ({interval}, {diff['n']} paired seeds): target of +"
        f"{settings.target_points:g} points {status}."
    )
    return target


def _pretraining_records(out: Path, settings: StudySettings) -> list[dict]:
    if "pretrain-ae" not in settings.arms:
        return []
    records = []
    for seed in settings.seed_values:
        path = pretrain_directory(out, seed) / "pretrain.json"
        if path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
            losses = record.pop("train_loss", [])
            record["first_epoch_loss"] = losses[0] if losses else None
            record["last_epoch_loss"] = losses[-1] if losses else None
            records.append(record)
    return records


def _method_text(settings: StudySettings) -> dict:
    return {
        "split": (
            f"one fixed duplicate-aware, label-stratified train/test split ({settings.test_fraction:.0%} test, "
            f"seed {settings.split_seed}); near-duplicates grouped by perceptual hash before splitting"
        ),
        "subsampling": (
            "per seed and class, whole duplicate groups in a seeded random order; the prefix closest to the "
            "fraction of the class's training images; nested across fractions"
        ),
        "budget": (
            f"no validation split; every arm trains max({settings.min_steps}, {settings.epochs} epochs of the real "
            f"labelled subset) optimisation steps of batch {settings.batch_size} (same steps for every arm at a "
            "fraction, up to rounding to whole epochs), last weights evaluated"
            + (f"; at most {settings.minutes_per_run:g} min per run" if settings.minutes_per_run else "")
        ),
        "gan": (
            f"{settings.synthetic_ratio:g} synthetic image(s) per real labelled image of each class, from a "
            "synthesizer fitted on the labelled subset only; real and synthetic images get classic augmentation"
        ),
        "pretrain-ae": (
            f"the classifier's feature trunk pre-trained as a denoising autoencoder (Gaussian noise sd "
            f"{settings.noise_std:g}, {settings.mask_fraction:.0%} of pixels masked, MSE to the clean image) on all "
            f"training images without labels for {settings.pretrain_epochs} epochs, once per seed; then fine-tuned "
            "like classic"
        ),
        "interval": (
            f"mean and {settings.confidence:.0%} t-interval over seeds; arm differences paired by seed (same "
            "labelled subset, same initialisation); the fixed test set's sampling error is not included"
        ),
        "verdict": (
            "helped if the accuracy-difference interval is above 0, hurt if below, else no significant difference"
        ),
    }
