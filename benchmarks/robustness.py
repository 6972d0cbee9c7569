"""Robustness benchmark: how much each trained segmentation model and its classical baselines lose on shifted
copies of their test cases (issue 12): intensities scaled or offset (another gain or exposure), added noise, a
coarser resolution. Re-scores the runs of ``benchmarks/segmentation.py`` (nothing is trained here).

    python benchmarks/robustness.py --workdir /work/bench/seg

Prints JSON, writes benchmarks/results/robustness.json and the robustness section of RESULTS.md. The defaults
must lose less than the learned global threshold, the baseline that depends on the absolute intensity scale.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from medlearn.apps.segmentation.evaluate import evaluate_run  # noqa: E402
from medlearn.evaluation.shifts import parse_shift  # noqa: E402
from results_table import replace_section  # noqa: E402

#: (name, run directory and test CSV under the segmentation benchmark's workdir)
RUNS = (
    ("nuclei U-Net (default, 128 px tiles)", "runs/nuclei/unet", "data/nuclei/test.csv"),
    ("sparse nuclei U-Net (default, 64 px tiles, seed 0)", "runs/sparse/default-seed0", "data/sparse/test.csv"),
    ("MNI152 3D U-Net (default)", "runs/mni/unet", "data/mni/test.csv"),
)
SHIFTS = ("scale:1.3", "scale:0.7", "offset:0.1", "noise:0.05", "resolution:2")
BASELINE = "global-threshold"


def score(run: Path, test_csv: Path, shift: str | None) -> dict:
    summary, _ = evaluate_run(
        run,
        str(test_csv),
        shift=parse_shift(shift) if shift else None,
        report_path=run / f"robustness-{(shift or 'none').replace(':', '-').replace(',', '_')}.html",
    )
    return {
        "dice": summary["dice"],
        "baseline": {name: values["dice"] for name, values in summary["baseline"].items()},
    }


def run_all(workdir: Path, shifts: tuple[str, ...]) -> list[dict]:
    rows = []
    for name, run, test in RUNS:
        run_dir, test_csv = workdir / run, workdir / test
        if not (run_dir / "config.yaml").is_file():
            print(f"skipped {name}: no run at {run_dir}", flush=True)
            continue
        plain = score(run_dir, test_csv, None)
        for shift in shifts:
            shifted = score(run_dir, test_csv, shift)
            row = {
                "run": name,
                "shift": shift,
                "model_dice": shifted["dice"],
                "model_loss": plain["dice"] - shifted["dice"],
                "unshifted_model_dice": plain["dice"],
                "baselines": {
                    baseline: {
                        "dice": shifted["baseline"][baseline],
                        "loss": plain["baseline"][baseline] - shifted["baseline"][baseline],
                        "unshifted": plain["baseline"][baseline],
                    }
                    for baseline in shifted["baseline"]
                },
            }
            row["model_loses_less_than_threshold"] = row["model_loss"] < row["baselines"][BASELINE]["loss"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def markdown(results: dict) -> str:
    lines = [
        f"Measured {results['date']} with `{results['command']}` on the runs of the segmentation benchmark. Dice "
        "on shifted copies of each run's test cases, and the loss against the unshifted cases (positive = worse). "
        "scale: intensities x F; offset: + F x the image's 1-99 percentile range; noise: Gaussian, sigma F x that "
        "range; resolution: F times coarser pixels (anti-aliased; metrics on the coarse grid).",
        "",
        "| run | shift | model Dice (loss) | global threshold Dice (loss) | Otsu Dice (loss) | "
        "model loses less than the threshold? |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        cells = [f"{row['model_dice']:.3f} ({row['model_loss']:+.3f})"]
        for baseline in (BASELINE, "otsu"):
            values = row["baselines"].get(baseline)
            cells.append(f"{values['dice']:.3f} ({values['loss']:+.3f})" if values else "-")
        verdict = "yes" if row["model_loses_less_than_threshold"] else "no"
        lines.append(f"| {row['run']} | {row['shift']} | {' | '.join(cells)} | {verdict} |")
    held = sum(row["model_loses_less_than_threshold"] for row in results["rows"])
    lines += [
        "",
        f"The default models lost less than the learned global threshold in {held} of {len(results['rows'])} "
        "shifted evaluations.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="The segmentation benchmark's workdir.")
    parser.add_argument("--shifts", nargs="*", default=list(SHIFTS))
    parser.add_argument("--json", type=Path, default=HERE / "results" / "robustness.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "rows": run_all(args.workdir, tuple(args.shifts)),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    table = markdown(results)
    replace_section(HERE / "RESULTS.md", "robustness", table)
    print(table)


if __name__ == "__main__":
    main()
