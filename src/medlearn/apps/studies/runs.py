"""``runs.csv`` of the augmentation study: one typed row per finished run, what lets a study resume.

The study rewrites the file (atomically) after every run, so an interrupted study knows which
(arm, fraction, seed) are done from this table alone; this module holds its columns and their types,
and reads and writes it. Kept apart from :mod:`medlearn.apps.studies.augmentation` so that the
study module is the protocol only.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medlearn.utils.atomic import write_text_atomic

#: The test metrics every run reports (and the study compares between arms).
REPORTED_METRICS: tuple[str, ...] = ("accuracy", "sensitivity", "specificity")


def run_directory(out: Path, arm: str, fraction: float, seed: int) -> Path:
    """Where one run of the study keeps its engine run and ``result.json``."""
    return Path(out) / "runs" / arm / f"f{fraction:g}-s{seed}"


RUN_COLUMNS: dict[str, type] = {
    "arm": str,
    "fraction": float,
    "seed": int,
    "n_labelled": int,
    "labelled_per_class": str,
    "n_synthetic": int,
    "n_train": int,
    "epochs": int,
    "steps": int,
    "init": str,
    "synthesizer": str,
    "accuracy": float,
    "sensitivity": float,
    "specificity": float,
    "balanced_accuracy": float,
    "auc": float,
    "n_test": int,
    "train_seconds": float,
    "synthesis_seconds": float,
    "finished": str,
}


def run_key(arm: str, fraction: float, seed: int) -> tuple[str, str, int]:
    """The identity of a run, comparable between settings and rows read back (fraction as ``%g`` text)."""
    return arm, f"{float(fraction):g}", int(seed)


def read_runs(path: Path) -> list[dict]:
    """Rows of ``runs.csv`` with typed values ([] if there is none yet)."""
    if not Path(path).is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {}
            for column, kind in RUN_COLUMNS.items():
                value = raw.get(column, "")
                if kind is str:
                    row[column] = value or ""
                elif value in ("", None):
                    row[column] = math.nan if kind is float else 0
                else:
                    row[column] = kind(float(value)) if kind is int else kind(value)
            rows.append(row)
    return rows


def write_runs(path: Path, rows: Sequence[dict], arm_order: Sequence[str]) -> Path:
    """Rewrite ``runs.csv`` atomically, rows ordered by arm (as in ``arm_order``, others last), fraction, seed."""
    order = {arm: i for i, arm in enumerate(arm_order)}
    ordered = sorted(rows, key=lambda r: (order.get(r["arm"], 99), r["fraction"], r["seed"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(RUN_COLUMNS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in ordered:
        writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()})
    return write_text_atomic(path, buffer.getvalue())
