"""The enhancement report warns in plain words only when the model does not beat its best classical baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlearn.apps.enhancement.evaluate import baseline_keys
from medlearn.apps.enhancement.report import write_enhancement_report


def _summary(model_psnr: float, baseline_psnr: float) -> dict:
    summary = {
        "task": "denoise",
        "noise": "gaussian:0.1",
        "scale": 1,
        "seed": 0,
        "n_slices": 2,
        "n_images": 2,
        "psnr": model_psnr,
        "ssim": 0.8,
        "degraded": {"psnr": 20.0, "ssim": 0.4},
        "baselines": {"nl_means": {"psnr": baseline_psnr, "ssim": 0.7}, "tv": {"psnr": baseline_psnr - 1, "ssim": 0.6}},
        "best_baseline": "nl_means",
        "gain_over_best_baseline_db": model_psnr - baseline_psnr,
        "seconds": {},
        "per_image": [],
    }
    summary.update(baseline_keys(summary))
    return summary


@pytest.mark.parametrize(("model_psnr", "warned"), [(25.0, True), (27.0, True), (29.0, False)])
def test_report_warns_exactly_when_the_best_baseline_is_not_beaten(tmp_path: Path, model_psnr: float, warned: bool):
    summary = _summary(model_psnr, baseline_psnr=27.0)  # 27 dB: a tie is not a win
    assert summary["baseline"]["nl_means"] == {"psnr": 27.0, "ssim": 0.7}
    assert summary["baseline_comparison"]["beaten"] is not warned
    path = write_enhancement_report(
        tmp_path / "report.html",
        title="t",
        evaluated_on="two slices",
        summary=summary,
        examples=[],
        settings={"model": "dncnn"},
        config={},
    )
    html = path.read_text()
    assert ("<strong>Warning:</strong> The model does NOT beat its classical baseline (nl_means)" in html) is warned
    assert ("does NOT beat" in html) is warned


def test_no_baselines_give_no_comparison():
    summary = _summary(25.0, 27.0)
    summary["baselines"] = {}
    assert baseline_keys(summary) == {"baseline": {}, "baseline_comparison": None}
