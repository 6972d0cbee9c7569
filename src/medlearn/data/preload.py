"""Decode and preprocess every image once, before training, so no epoch decodes a file again.

Bad files are collected (path + reason) instead of stopping the run, unless ``strict``: a folder
with a few broken images still trains, and the report lists what was skipped. The result can be kept
on disk (``cache_dir``), keyed by every file's path, size and modification time plus the
preprocessing, so a second run with the same data starts at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.data.files import file_fingerprint
from medlearn.data.records import Sample
from medlearn.errors import InconsistentDataError, MedlearnError
from medlearn.io import load
from medlearn.utils.atomic import atomic_path

Preprocess = Callable[..., np.ndarray]


@dataclass
class Preloaded:
    """Preprocessed arrays (float16, ``(N, C, H, W)``) of the samples that could be read, in order."""

    arrays: np.ndarray
    samples: list[Sample]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)


def preload(
    samples: Sequence[Sample],
    preprocess: Preprocess,
    *,
    cache_dir: Path | None = None,
    strict: bool = False,
    show_progress: bool = True,
    description: str = "Decoding images",
) -> Preloaded:
    """Load and preprocess ``samples`` (skipping unreadable ones unless ``strict``)."""
    if not samples:
        raise MedlearnError("no images to load")
    cache_file = _cache_file(samples, preprocess, cache_dir) if cache_dir is not None else None
    if cache_file is not None and cache_file.exists():
        cached = _read_cache(cache_file, samples)
        if cached is not None and strict and cached.skipped:
            path, problem = cached.skipped[0]
            raise MedlearnError(problem, path)
        if cached is not None:
            return cached

    arrays: list[np.ndarray] = []
    kept: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for sample in _iterate(samples, show_progress, description):
        try:
            arrays.append(preprocess(load(sample.path)).astype(np.float16))
        except InconsistentDataError:
            raise
        except MedlearnError as error:
            if strict:
                raise
            skipped.append((str(sample.path), error.problem))
            continue
        kept.append(sample)
    if not kept:
        first = f"; first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise MedlearnError(f"none of the {len(samples)} images could be read{first}")
    result = Preloaded(np.stack(arrays), kept, skipped)
    if cache_file is not None:
        _write_cache(cache_file, result, samples)
    return result


def _iterate(samples: Sequence[Sample], show_progress: bool, description: str):
    if not show_progress:
        return samples
    from rich.progress import track

    return track(samples, description=description, transient=True)


def _cache_file(samples: Sequence[Sample], preprocess: Preprocess, cache_dir: Path) -> Path:
    """Keyed by the preprocessing's settings and its code version (``code_version``: a change of what the code
    computes must not serve stale arrays) plus every file's path, size and modification time."""
    settings = preprocess.to_dict() if hasattr(preprocess, "to_dict") else repr(preprocess)
    version = getattr(preprocess, "code_version", 0)
    digest = hashlib.sha256(json.dumps({"settings": settings, "code_version": version}, sort_keys=True).encode())
    for sample in samples:
        digest.update(file_fingerprint(sample.path).encode())
    return Path(cache_dir) / f"{digest.hexdigest()[:24]}.npz"


def _read_cache(cache_file: Path, samples: Sequence[Sample]) -> Preloaded | None:
    try:
        with np.load(cache_file, allow_pickle=False) as stored:
            arrays = stored["arrays"]
            kept_index = stored["kept"]
            skipped = json.loads(str(stored["skipped"]))
    except (OSError, KeyError, ValueError):
        return None  # a damaged cache is rebuilt, never trusted
    return Preloaded(arrays, [samples[i] for i in kept_index], [tuple(s) for s in skipped])


def _write_cache(cache_file: Path, result: Preloaded, samples: Sequence[Sample]) -> None:
    position = {id(s): i for i, s in enumerate(samples)}
    kept_index = np.array([position[id(s)] for s in result.samples], dtype=np.int64)
    try:
        with atomic_path(cache_file) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, arrays=result.arrays, kept=kept_index, skipped=json.dumps(result.skipped))
    except OSError:
        pass  # caching is an optimisation: a read-only cache folder must not fail the run
