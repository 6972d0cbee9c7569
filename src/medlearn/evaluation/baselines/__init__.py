"""Classical baselines that every evaluation reports beside the model, and the plain-words comparison.

A network that a simple classical method beats should never be shipped silently: each task's
evaluation scores its baseline(s) on the same images, writes them under ``baseline`` in the JSON
(``{name: {metric: value}}``) and says in plain words whether the model beat the best of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class BaselineComparison:
    """The model against its strongest classical baseline on one metric."""

    metric: str
    model: float
    baseline_name: str
    baseline: float
    higher_is_better: bool = True

    @property
    def beaten(self) -> bool:
        """True when the model is strictly better than the baseline (a tie does not justify a network)."""
        if math.isnan(self.model):
            return False
        if math.isnan(self.baseline):
            return True
        return self.model > self.baseline if self.higher_is_better else self.model < self.baseline

    @property
    def margin(self) -> float:
        """Model minus baseline, signed so that positive means the model is better."""
        difference = self.model - self.baseline
        return difference if self.higher_is_better else -difference

    def sentence(self, label: str | None = None) -> str:
        """One sentence for the console and the report."""
        name = label or self.metric
        figures = f"{name} {_fmt(self.model)} vs {_fmt(self.baseline)}"
        if self.beaten:
            return f"The model beats its classical baseline ({self.baseline_name}): {figures}."
        return (
            f"The model does NOT beat its classical baseline ({self.baseline_name}): {figures}. "
            "On these data the classical method is at least as good; prefer it or improve the model."
        )

    def to_dict(self, label: str | None = None) -> dict:
        """JSON-ready; ``label`` names the metric in the sentence (e.g. "balanced accuracy")."""
        return {
            "metric": self.metric,
            "model": _jsonable(self.model),
            "baseline_name": self.baseline_name,
            "baseline": _jsonable(self.baseline),
            "higher_is_better": self.higher_is_better,
            "beaten": self.beaten,
            "text": self.sentence(label),
        }


def compare_to_baseline(
    model_metrics: Mapping[str, float | None],
    baselines: Mapping[str, Mapping[str, float | None]],
    metric: str,
    *,
    higher_is_better: bool = True,
) -> BaselineComparison | None:
    """The model's ``metric`` against the best baseline's (None when no baseline has the metric)."""
    scored = {name: _float(values.get(metric)) for name, values in baselines.items()}
    scored = {name: value for name, value in scored.items() if not math.isnan(value)}
    if not scored:
        return None
    pick = max if higher_is_better else min
    best = pick(scored, key=scored.__getitem__)
    return BaselineComparison(metric, _float(model_metrics.get(metric)), best, scored[best], higher_is_better)


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _jsonable(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"
