"""What turns an image file into a vector for retrieval, and how an index remembers which one it was built with.

Every embedder has a ``description``: a small JSON-able dict with its ``name``, a ``version`` that changes whenever
the same file would get another vector (a retrained model's weights digest, a refitted standardisation), and
whatever is needed to rebuild it (:func:`embedder_from_description`). The index stores it in its manifest and
refuses queries embedded by another version.

- ``classifier-trunk``: the penultimate layer of a ``medlearn classify train`` run (reuse; semantic similarity);
- ``self-supervised``: the trunk features of a SimCLR run (:mod:`medlearn.apps.retrieval.selfsupervised`), for
  images without labels;
- ``histogram``: the classical baseline of classification (intensity histogram, GLCM/LBP texture, edge
  directions, thumbnail) on [0, 1]-scaled 128 px images, standardised by the indexed images' statistics;
- ``phash``: the 64-bit perceptual hash as a +-1 vector (cosine = 1 - 2 Hamming / 64): near-duplicates only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from medlearn.data.dedup import perceptual_hash_bits
from medlearn.data.preprocess import ClassificationPreprocessing
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.classification import FeatureSpec, extract_features
from medlearn.evaluation.feature_network import FeatureExtractor, classifier_input
from medlearn.io import load
from medlearn.utils.hashing import file_sha256

EMBEDDERS = ("classifier-trunk", "self-supervised", "histogram", "phash")
#: Images embedded per batch (bounded memory on large indexes).
BATCH = 256


class Embedder(Protocol):
    description: dict

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """``(n, d)`` float32 vectors (not yet normalised), one per file, in order."""
        ...


def _arrays(paths: Sequence[Path], preprocessing: ClassificationPreprocessing) -> np.ndarray:
    return np.stack([preprocessing(load(path)) for path in paths]).astype(np.float32)


class RunTrunk:
    """Trunk features of a trained run: its own preprocessing of each file, then the network up to its feature
    layer. Subclasses say how the run is loaded."""

    preprocessing: ClassificationPreprocessing
    extractor: FeatureExtractor
    description: dict

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        chunks = [
            self.extractor(_arrays(paths[i : i + BATCH], self.preprocessing)) for i in range(0, len(paths), BATCH)
        ]
        return np.concatenate(chunks).astype(np.float32)


class ClassifierTrunk(RunTrunk):
    """Penultimate features of a classification run."""

    def __init__(self, run_dir: Path) -> None:
        from medlearn.apps.classification.model import TrainedClassifier

        trained = TrainedClassifier.from_run_dir(run_dir)
        self.preprocessing = trained.preprocessing
        self.extractor = FeatureExtractor.from_classifier(trained.model, trained.preprocessing, normalise=False)
        self.description = {"name": "classifier-trunk", "version": _weights_version(run_dir), "run": _resolved(run_dir)}


class SelfSupervisedTrunk(RunTrunk):
    """Trunk features (before the projection head) of a self-supervised SimCLR run."""

    def __init__(self, run_dir: Path) -> None:
        from medlearn.apps.retrieval.selfsupervised import load_encoder

        model, preprocessing = load_encoder(Path(run_dir))
        self.preprocessing = preprocessing
        self.extractor = FeatureExtractor(
            model,
            lambda images: classifier_input(images, preprocessing, normalise=False),
            name="self-supervised",
            description=f"trunk features of a SimCLR-trained {model.base.__class__.__name__}",
            feature_layer=model.feature_layer,
        )
        self.description = {"name": "self-supervised", "version": _weights_version(run_dir), "run": _resolved(run_dir)}


def _weights_version(run_dir: Path) -> str:
    from medlearn.apps.classification.model import weights_path

    return file_sha256(weights_path(Path(run_dir)))[:16]


def _resolved(run_dir: Path) -> str:
    return str(Path(run_dir).resolve())


UNIT_128 = ClassificationPreprocessing(image_size=128, channels=1, intensity="unit")


@dataclass
class HistogramTexture:
    """The classical baseline's features, standardised (z-score per feature, learned on the indexed images)."""

    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @property
    def description(self) -> dict:
        if self.mean is None:
            raise MedlearnError("the histogram embedder has not been fitted on the indexed images yet")
        version = hashlib.sha256(np.concatenate([self.mean, self.std]).astype(np.float64).tobytes()).hexdigest()[:16]
        return {"name": "histogram", "version": version, "mean": self.mean.tolist(), "std": self.std.tolist()}

    def features(self, paths: Sequence[Path]) -> np.ndarray:
        spec = FeatureSpec((0.0, 1.0))
        chunks = [extract_features(_arrays(paths[i : i + BATCH], UNIT_128), spec) for i in range(0, len(paths), BATCH)]
        return np.concatenate(chunks)

    def fit(self, paths: Sequence[Path]) -> np.ndarray:
        """Learn the standardisation on ``paths`` and return their vectors."""
        raw = self.features(paths)
        self.mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        self.std = np.where(std > 1e-12, std, 1.0)
        return self._standardise(raw)

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        return self._standardise(self.features(paths))

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self.mean) / self.std).astype(np.float32)


@dataclass
class PerceptualHash:
    description: dict = field(default_factory=lambda: {"name": "phash", "version": "1"})

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        bits = np.stack([perceptual_hash_bits(Path(path)) for path in paths])
        return np.where(bits, 1.0, -1.0).astype(np.float32)


def make_embedder(name: str, run_dir: Path | None = None):
    """A fresh embedder: ``classifier-trunk`` needs ``run_dir``; ``histogram`` must still be fitted."""
    if name == "classifier-trunk":
        if run_dir is None:
            raise MedlearnError("the classifier-trunk embedder needs a classification run (--from-run)")
        return ClassifierTrunk(Path(run_dir))
    if name == "self-supervised":
        if run_dir is None:
            raise MedlearnError("the self-supervised embedder needs a self-supervised retrieval run")
        return SelfSupervisedTrunk(Path(run_dir))
    if name == "histogram":
        return HistogramTexture()
    if name == "phash":
        return PerceptualHash()
    raise MedlearnError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")


def embedder_from_description(description: dict):
    """The embedder an index was built with, rebuilt from its manifest entry (same vectors for the same file)."""
    name = description.get("name")
    if name in ("classifier-trunk", "self-supervised"):
        embedder = make_embedder(name, Path(description["run"]))
        if embedder.description["version"] != description.get("version"):
            raise MedlearnError("the run's weights changed since the index was built: re-index", description["run"])
        return embedder
    if name == "histogram":
        return HistogramTexture(np.asarray(description["mean"]), np.asarray(description["std"]))
    if name == "phash":
        return PerceptualHash()
    raise MedlearnError(f"the index was built by an unknown embedder {name!r}")
