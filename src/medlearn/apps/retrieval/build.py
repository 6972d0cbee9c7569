"""``retrieve index|add|remove``: embed the images of a CSV into a saved index, and keep it up to date.

The CSV has ``path,label[,group]``. Images without a group get the near-duplicate cluster that perceptual hashing
finds (:func:`medlearn.data.dedup.assign_groups`), so a query is never credited for finding its own copy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from medlearn.apps.retrieval.embedders import embedder_from_description, make_embedder
from medlearn.apps.retrieval.index import Entry, VectorIndex
from medlearn.data.dedup import assign_groups
from medlearn.data.records import Sample
from medlearn.data.sources import load_samples
from medlearn.errors import MedlearnError
from medlearn.utils.hashing import file_sha256


def entries_of(samples: Sequence[Sample]) -> list[Entry]:
    """Index entries of ``samples``: resolved paths, labels, groups (near-duplicate clusters where none is given)
    and content digests."""
    grouped = assign_groups(list(samples)) if len(samples) > 1 else list(samples)
    return [Entry(str(Path(s.path).resolve()), s.label, s.group, file_sha256(Path(s.path))) for s in grouped]


def build_index(
    data: str, out: Path, *, embedder: str = "classifier-trunk", run_dir: Path | None = None, kind: str | None = None
) -> tuple[VectorIndex, dict]:
    """Embed every image of ``data`` and save the index in ``out``; returns it with timings."""
    samples = load_samples(data, labelled=False)
    if not samples:
        raise MedlearnError("no images to index", data)
    chosen = make_embedder(embedder, run_dir)
    started = time.perf_counter()
    entries = entries_of(samples)
    paths = [Path(entry.path) for entry in entries]
    vectors = chosen.fit(paths) if hasattr(chosen, "fit") else chosen.embed(paths)
    index = VectorIndex(vectors, entries, chosen.description, kind)
    index.save(out)
    seconds = time.perf_counter() - started
    return index, {"images": len(entries), "seconds": round(seconds, 2), "embedder": chosen.description["name"]}


def embedder_for_run(run_dir: Path | None) -> str:
    """The embedder that reads ``run_dir``: a self-supervised retrieval run's or a classifier's trunk."""
    from medlearn.apps.retrieval.selfsupervised import is_self_supervised_run

    return "self-supervised" if run_dir is not None and is_self_supervised_run(run_dir) else "classifier-trunk"


def train_embedding(
    data: str,
    out: Path,
    *,
    model: str | None = None,
    base: str | None = None,
    max_minutes: float | None = None,
    epochs: int | None = None,
    modality: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> Path:
    """An embedding trained for retrieval in ``out``; its trunk embeds. ``retrieval-supcon`` (the default when
    every image has a label): a classifier trained with cross-entropy + supervised contrastive loss by the
    classification pipeline (duplicate-aware split, augmentation, budget, report). ``retrieval-simclr`` (the default
    without labels): self-supervised, :func:`medlearn.apps.retrieval.selfsupervised.train_self_supervised`."""
    from medlearn.apps.classification.train import ClassificationTrainRequest, train_classifier
    from medlearn.apps.retrieval.selfsupervised import MODEL as SELF_SUPERVISED
    from medlearn.apps.retrieval.selfsupervised import train_self_supervised

    if model is None:
        model = "retrieval-supcon" if all(s.label for s in load_samples(data, labelled=False)) else SELF_SUPERVISED
    if model == SELF_SUPERVISED:
        return train_self_supervised(
            data, out, base=base, max_minutes=max_minutes, epochs=epochs, modality=modality, image_size=image_size,
            seed=seed, quiet=quiet,
        )  # fmt: skip

    task = {"model": model, **({"modality": modality} if modality else {})}
    if base is not None:
        task["model_kwargs"] = {"base": base}
    if image_size is not None:
        task["image_size"] = image_size
    training = {"seed": seed, **({"max_minutes": max_minutes} if max_minutes else {})}
    if epochs is not None:
        training["epochs"] = epochs
    request = ClassificationTrainRequest.build(
        data=data, out=out, overrides={"classification": task, "training": training}
    )
    # no early stopping (a None override never replaces a default, so set here): the monitored classification loss
    # is not the retrieval objective, and a granted budget is for using
    request.training["early_stopping_patience"] = None
    return train_classifier(request, quiet=quiet).run_dir


def add_to_index(folder: Path, data: str) -> VectorIndex:
    """Embed the images of ``data`` with the index's own embedder and save the grown index."""
    index = VectorIndex.load(folder)
    embedder = embedder_from_description(index.embedder)
    entries = entries_of(load_samples(data, labelled=False))
    grown = index.add(embedder.embed([Path(e.path) for e in entries]), entries)
    grown.save(folder)
    return grown


def remove_from_index(folder: Path, paths: Sequence[str]) -> VectorIndex:
    index = VectorIndex.load(folder)
    shrunk = index.remove([str(Path(p).resolve()) for p in paths])
    shrunk.save(folder)
    return shrunk
