"""A localisation run's classical baseline: template matching fitted on the run's training images
(``baseline.npz``, arrays only, no pickle), applied on the plan's grid as the network is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medlearn.apps.localisation.landmark_cases import LocalisationCase
from medlearn.apps.localisation.landmarks import ImageLandmarks
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.landmarks import TemplateMatcher, fit_template_matcher
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import planned_affine

BASELINE_FILE = "baseline.npz"


@dataclass
class RunBaseline:
    model: TemplateMatcher | None
    note: str | None = None


def fit_and_store(
    run_dir: Path,
    cases: Sequence[LocalisationCase],
    items: Sequence[ImageLandmarks],
    names: Sequence[str],
    plan: SegmentationPlan,
) -> RunBaseline:
    """Fit on the prepared training cases and keep it in the run; a failure becomes a note, never a lost run."""
    try:
        matcher = fit_template_matcher(
            [case.case.image for case in cases],
            [planned_affine(item.image, plan) for item in items],
            [case.landmarks for case in cases],
            names,
        )
    except MedlearnError as error:
        return RunBaseline(None, f"No classical baseline could be fitted: {error.problem}")
    matcher.save(Path(run_dir) / BASELINE_FILE)
    return RunBaseline(matcher)


def run_baseline(run_dir: Path) -> RunBaseline:
    path = Path(run_dir) / BASELINE_FILE
    if not path.is_file():
        return RunBaseline(None, "No classical baseline: the run has no baseline.npz.")
    return RunBaseline(TemplateMatcher.load(path))
