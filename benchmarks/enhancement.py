"""Enhancement benchmark: learned denoising and super-resolution vs. classical baselines, 2 CPU cores.

Experiments (each trains with medlearn's own ``enhance train`` workflow under a wall-clock budget, then
runs ``enhance evaluate`` on held-out files with a fixed degradation seed):

- ``mr-gaussian``: Gaussian noise sigma 0.05 on MR. Train: Br35H "no" slices + pyradiomics brain1;
  test: Br35H "yes" slices (another class, so Br35H's within-class near-duplicates cannot straddle
  the split) + brain2 (another subject).
- ``mr-rician``: Rician noise sigma 0.05 on the same MR split.
- ``ct-poisson``: photon-count noise (``poisson:DOSE``, low-dose CT) on pyradiomics lung CT in the
  lung window: train on lung1's slices, test on lung2's (another patient).
- ``mr-sr2`` / ``mr-sr4``: 2x / 4x super-resolution on the MR split.

Br35H JPGs are converted to grey and shrunk so their longer side is at most 256 px (PNG), to keep
whole-slice evaluation of the baselines affordable. Noise levels are fractions of the unit intensity
range (see medlearn.data.degradation). The baselines get the true noise level (favouring them).

Reported per experiment: model PSNR/SSIM, the degraded input's and every baseline's PSNR/SSIM, training
and inference seconds, and whether the target "the learned model beats every classical baseline by
>= 1 dB PSNR" held.

    python benchmarks/enhancement.py --minutes 4            # all experiments, ~4 min of training each
    python benchmarks/enhancement.py --table                # table of the saved JSON into RESULTS.md, runs nothing

Prints JSON and writes benchmarks/results/enhancement.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_table import replace_section  # noqa: E402

SHARED_DATA = HERE.parent.parent / "shared" / "data"
TARGET_DB = 1.0
MAX_SIDE = 256

#: name -> (data set, task, degradation flags, model)
EXPERIMENTS: dict[str, dict] = {
    "mr-gaussian": {"data": "mr", "flags": {"task": "denoise", "degradation": "gaussian:0.05"}, "model": "dncnn"},
    "mr-rician": {"data": "mr", "flags": {"task": "denoise", "degradation": "rician:0.05"}, "model": "dncnn"},
    "ct-poisson": {"data": "ct", "flags": {"task": "denoise", "degradation": "poisson:500"}, "model": "dncnn"},
    "mr-sr2": {"data": "mr", "flags": {"task": "sr", "degradation": "downsample:2"}, "model": "sr-resnet"},
    "mr-sr4": {"data": "mr", "flags": {"task": "sr", "degradation": "downsample:4"}, "model": "sr-resnet"},
}


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "modality"])
        writer.writerows(rows)
    return path


def mr_data(workdir: Path, n_train: int, n_test: int) -> dict[str, Path]:
    """Br35H 'no' (train) / 'yes' (test) slices as grey PNGs <= 256 px, plus brain1 (train) / brain2 (test)."""
    from PIL import Image

    from medlearn.data.sources import br35h_samples

    folder = workdir / "data" / "mr"
    folder.mkdir(parents=True, exist_ok=True)
    samples = br35h_samples()
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for label, part, count in (("no", "train", n_train), ("yes", "test", n_test)):
        files = sorted(s.path for s in samples if s.label == label)
        step = max(1, len(files) // count)
        for file in files[::step][:count]:
            target = folder / f"{label}_{file.stem}.png"
            if not target.exists():
                with Image.open(file) as image:
                    grey = image.convert("L")
                    grey.thumbnail((MAX_SIDE, MAX_SIDE), Image.BICUBIC)
                    grey.save(target)
            rows[part].append((str(target), "MR"))
    rows["train"].append((str(SHARED_DATA / "pyradiomics" / "brain1_image.nrrd"), "MR"))
    rows["test"].append((str(SHARED_DATA / "pyradiomics" / "brain2_image.nrrd"), "MR"))
    return {part: _write_csv(folder / f"{part}.csv", items) for part, items in rows.items()}


def ct_data(workdir: Path) -> dict[str, Path]:
    folder = workdir / "data" / "ct"
    return {
        "train": _write_csv(folder / "train.csv", [(str(SHARED_DATA / "pyradiomics" / "lung1_image.nrrd"), "CT")]),
        "test": _write_csv(folder / "test.csv", [(str(SHARED_DATA / "pyradiomics" / "lung2_image.nrrd"), "CT")]),
    }


def run_experiment(
    name: str, csvs: dict[str, Path], workdir: Path, *, minutes: float, threads: int | None, max_slices: int
) -> dict:
    """Train under the budget, evaluate on the test CSV; metrics, times and the target as one row."""
    from medlearn.apps.enhancement.evaluate import evaluate_run
    from medlearn.apps.enhancement.train import EnhancementTrainRequest, train_enhancer

    experiment = EXPERIMENTS[name]
    out = workdir / "runs" / name
    if out.exists():
        shutil.rmtree(out)
    settings = {**experiment["flags"], "model": experiment["model"], "batches_per_epoch": 50}
    if experiment["data"] == "ct":
        # lung window: lung parenchyma, soft tissue and vessels all inside [0, 1]; a single training file,
        # so nothing is held out for validation (best = last checkpoint)
        settings.update(ct_window="lung", val_fraction=0.0)
    request = EnhancementTrainRequest.build(
        data=str(csvs["train"]),
        out=out,
        overrides={
            "enhancement": settings,
            "training": {"max_minutes": minutes, "num_threads": threads},  # no --epochs: the budget decides
        },
    )
    started = time.perf_counter()
    train_enhancer(request, quiet=True)
    train_seconds = time.perf_counter() - started
    history = json.loads((out / "metrics.json").read_text())
    summary, _ = evaluate_run(out, str(csvs["test"]), seed=0, max_slices=max_slices)
    baselines = summary["baselines"]
    margins = {b: summary["psnr"] - v["psnr"] for b, v in baselines.items()}
    return {
        "experiment": name,
        "task": summary["task"],
        "noise": summary["noise"],
        "model": summary["model"],
        "train_files": _count_rows(csvs["train"]),
        "test_files": summary["n_images"],
        "test_slices": summary["n_slices"],
        "psnr": summary["psnr"],
        "ssim": summary["ssim"],
        "degraded": summary["degraded"],
        "baselines": baselines,
        "margin_over_baselines_db": margins,
        "target_met": bool(margins) and all(m >= TARGET_DB for m in margins.values()),
        "epochs": len(history),
        "budget_minutes": minutes,
        "threads": threads,
        "train_seconds": round(train_seconds, 1),
        "inference_seconds_per_slice": round(summary["seconds"]["model"] / max(1, summary["n_slices"]), 4),
        "baseline_seconds_per_slice": {
            b: round(summary["seconds"][b] / max(1, summary["n_slices"]), 4)
            for b in baselines
            if b in summary["seconds"]
        },
        "seed": summary["seed"],
    }


def _count_rows(path: Path) -> int:
    with open(path, newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def markdown_table(results: dict) -> str:
    """One row per experiment: model, input and every baseline PSNR/SSIM, times, target."""
    lines = [
        "| experiment | model | input PSNR/SSIM | baselines PSNR/SSIM | model PSNR/SSIM | margin over best (dB) "
        "| target >= 1 dB | budget min (epochs) | infer s/slice |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results.get("experiments", {}).values():
        baselines = ", ".join(f"{name} {v['psnr']:.2f}/{v['ssim']:.3f}" for name, v in row["baselines"].items())
        margin = min(row["margin_over_baselines_db"].values()) if row["margin_over_baselines_db"] else float("nan")
        lines.append(
            f"| {row['experiment']} ({row['noise']}) | {row['model']} "
            f"| {row['degraded']['psnr']:.2f}/{row['degraded']['ssim']:.3f} | {baselines} "
            f"| {row['psnr']:.2f}/{row['ssim']:.3f} | {margin:+.2f} | {'yes' if row['target_met'] else 'no'} "
            f"| {row.get('budget_minutes', round(row['train_seconds'] / 60))} ({row['epochs']}) "
            f"| {row['inference_seconds_per_slice']:.3f} |"
        )
    meta = results.get("meta", {})
    if meta:
        lines.append("")
        lines.append(
            f"Training on {meta.get('threads')} thread(s) of 2 CPU cores; test slices degraded with seed 0; "
            f"at most {meta.get('max_slices')} slices per test volume; PSNR/SSIM "
            "on the unit intensity range (data_range 1). Baselines were given the true noise level."
        )
        lines += [f"Note: {note}" for note in meta.get("notes", [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="*", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    parser.add_argument("--minutes", type=float, default=4.0, help="Training budget per model (minutes).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medlearn-enhance-bench"))
    parser.add_argument("--train-images", type=int, default=120, help="Br35H training slices (MR set).")
    parser.add_argument("--test-images", type=int, default=24, help="Br35H test slices (MR set).")
    parser.add_argument("--max-slices", type=int, default=8, help="Test slices per volume.")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "enhancement.json")
    parser.add_argument("--merge", action="store_true", help="Keep experiments of an earlier JSON not rerun now.")
    parser.add_argument("--table", action="store_true", help="Print the markdown table of --json, run nothing.")
    args = parser.parse_args(argv)

    if args.table:
        if not args.json.is_file():
            raise SystemExit(f"{args.json}: no results yet; run the benchmark first")
        table = markdown_table(json.loads(args.json.read_text()))
        replace_section(HERE / "RESULTS.md", "enhancement", table)
        print(table)
        return 0
    if not SHARED_DATA.is_dir():
        raise SystemExit(f"{SHARED_DATA}: the shared data folder is missing")
    import torch

    torch.set_num_threads(args.threads)
    previous = json.loads(args.json.read_text()) if args.merge and args.json.is_file() else {}
    results = {
        "meta": {
            "minutes": args.minutes,
            "threads": args.threads,
            "max_slices": args.max_slices,
            "train_images": args.train_images,
            "test_images": args.test_images,
            "target": f"learned model beats every classical baseline by >= {TARGET_DB} dB PSNR",
        },
        "experiments": dict(previous.get("experiments", {})),
    }
    data: dict[str, dict[str, Path]] = {}
    for name in args.experiments:
        kind = EXPERIMENTS[name]["data"]
        if kind not in data:
            data[kind] = (
                mr_data(args.workdir, args.train_images, args.test_images) if kind == "mr" else ct_data(args.workdir)
            )
        print(f"[enhancement] {name}: training {args.minutes:g} min ...", file=sys.stderr, flush=True)
        row = run_experiment(
            name, data[kind], args.workdir, minutes=args.minutes, threads=args.threads, max_slices=args.max_slices
        )
        results["experiments"][name] = row
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
