"""The steps every evaluation of a trained run takes, in one place: score the run's best model (and its classical
baseline) on samples, stamp where the figures come from, write the JSON and the HTML report.

A task supplies a :class:`RunScorer` (how to load its run, score samples into per-item results and a JSON summary,
and draw its report); :func:`report_after_training` and :func:`evaluate_run_on` do the rest the same way for every
task that uses them (detection, landmark and box localisation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from medlearn.apps.common.run_info import data_slug, read_history
from medlearn.data.records import Sample
from medlearn.data.splits import Split
from medlearn.utils.atomic import write_text_atomic

VAL_METRICS_FILE = "val_metrics.json"


class RunScorer(Protocol):
    """One task's way of scoring a run (built from the run folder; loads its model on first use)."""

    #: "Detection", "Localisation", ...: the reports' titles start with it.
    noun: str
    #: What one scored item is, plural form ("image(s)", "volume(s)").
    items: str

    def score(self, samples: Sequence[Sample]) -> tuple[list[Any], dict]:
        """Per-item results and the JSON-ready summary (model, baseline, comparison)."""
        ...

    def write_report(
        self, path: Path, results: list[Any], summary: dict, *, title: str, evaluated_on: str, history: list[dict]
    ) -> Path: ...


def report_after_training(scorer: RunScorer, run_dir: Path, history: Sequence[dict]) -> tuple[Path | None, dict]:
    """Score the best checkpoint on the run's validation part, write ``val_metrics.json`` and ``report.html``."""
    run_dir = Path(run_dir)
    split = Split.from_csv(run_dir / "split.csv")
    if not split.val:
        return None, {}
    results, summary = scorer.score(split.val)
    summary["evaluated_on"] = "validation"
    write_text_atomic(run_dir / VAL_METRICS_FILE, json.dumps(summary, indent=2))
    report = scorer.write_report(
        run_dir / "report.html",
        results,
        summary,
        title=f"{scorer.noun} run {run_dir.name}",
        evaluated_on=f"the {len(results)} validation {scorer.items} of the run",
        history=list(history),
    )
    return report, summary


def evaluate_run_on(
    scorer: RunScorer,
    run_dir: Path,
    samples: Sequence[Sample],
    data: str,
    *,
    json_path: Path | None = None,
    report_path: Path | None = None,
) -> tuple[dict, Path]:
    """``<task> evaluate``: score ``samples`` (read from ``data``), write the JSON if asked and the report
    (default: ``evaluation-<data>.html`` in the run folder)."""
    run_dir = Path(run_dir)
    results, summary = scorer.score(samples)
    summary["evaluated_on"] = str(data)
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(summary, indent=2))
    report_path = report_path or run_dir / f"evaluation-{data_slug(data)}.html"
    scorer.write_report(
        report_path,
        results,
        summary,
        title=f"{scorer.noun} evaluation of {run_dir.name}",
        evaluated_on=str(data),
        history=read_history(run_dir),
    )
    return summary, report_path
