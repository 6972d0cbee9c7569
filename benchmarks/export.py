"""Export benchmark: the trained runs of the other benchmarks as ONNX files and torch.export programs, 2 CPU cores.

Per run: export seconds, the largest |exported - trained| on the check's random inputs, and milliseconds per image
of the eager fp32 network, the ONNX Runtime session and the torch.export program (batch of 8, best of 3).
Classification also runs the whole Br35H test split through the run (its own bf16 inference) and through the ONNX
file: prediction agreement and test accuracy of each, so "the exported model is the trained one" is measured on
real images, not only on random inputs.

    python benchmarks/export.py --workdir /work/bench/export --classifier-run /work/bench/cls/cls-multires \\
        --runs /work/bench/seg/runs/nuclei/unet /work/bench/seg/runs/mni/unet /work/bench/enh/runs/mr-gaussian \\
        /work/bench/enh/runs/mr-sr2

Prints JSON, writes benchmarks/results/export.json and the export section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_table import replace_section  # noqa: E402


def export_run(run: Path, workdir: Path) -> dict:
    from medlearn.inference.export import export
    from medlearn.utils.yaml_files import read_yaml

    task = read_yaml(run / "config.yaml")["task"]
    spec = importlib.import_module(f"medlearn.apps.{task}.export").export_spec(run)
    row = {"run": str(run), "task": task, "model": spec.metadata["model"]}
    for fmt in ("onnx", "pt2"):
        check = export(spec, workdir / f"{run.parent.name}-{run.name}.{fmt}", fmt)
        row[fmt] = check.to_dict()
    return row


def classification_agreement(run: Path, onnx_file: Path) -> dict:
    """The run's test split predicted by the run and by its ONNX export."""
    from medlearn.apps.classification.model import ExportedClassifier, TrainedClassifier
    from medlearn.data.preload import preload
    from medlearn.data.records import Sample

    with open(run / "split.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    trained, exported = TrainedClassifier.from_run_dir(run), ExportedClassifier.from_file(onnx_file)
    arrays = preload([Sample(Path(r["path"]), r["label"]) for r in rows], trained.preprocessing).arrays
    labels = np.array([trained.classes.index(r["label"]) for r in rows])
    started = time.perf_counter()
    by_run = trained.probabilities(arrays)
    run_seconds = time.perf_counter() - started
    started = time.perf_counter()
    by_onnx = exported.probabilities(arrays)
    onnx_seconds = time.perf_counter() - started
    return {
        "images": len(rows),
        "agreement": float((by_run.argmax(1) == by_onnx.argmax(1)).mean()),
        "max_probability_difference": float(np.abs(by_run - by_onnx).max()),
        "accuracy_run": float((by_run.argmax(1) == labels).mean()),
        "accuracy_onnx": float((by_onnx.argmax(1) == labels).mean()),
        "run_ms_per_image": round(1000 * run_seconds / len(rows), 3),
        "onnx_ms_per_image": round(1000 * onnx_seconds / len(rows), 3),
    }


def markdown(results: dict) -> str:
    lines = [
        f"Each run's best network exported by `medlearn export` (checked against it before it is kept), "
        f"{results['threads']} threads. `{results['command']}` ({results['date']})",
        "",
        "| run | task | model | ONNX export s | max diff | eager fp32 ms/img | ONNX Runtime ms/img "
        "| torch.export ms/img |",
        "|---|---|---|---|---|---|---|---|",
    ]
    root = os.path.commonpath([row["run"] for row in results["rows"]])
    for row in results["rows"]:
        onnx, program = row["onnx"], row["pt2"]
        lines.append(
            f"| {os.path.relpath(row['run'], root)} | {row['task']} | {row['model']} | "
            f"{onnx['seconds']} | {onnx['max_abs_difference']:.1e} | {onnx['eager_ms_per_image']} | "
            f"{onnx['exported_ms_per_image']} | {program['exported_ms_per_image']} |"
        )
    agreement = results.get("classification")
    if agreement:
        lines += [
            "",
            f"Classification on the run's {agreement['images']} Br35H test images: the ONNX file agrees with the run "
            f"on {agreement['agreement']:.1%} of predictions (largest probability difference "
            f"{agreement['max_probability_difference']:.3f}: the run infers in bf16, the ONNX file in fp32); test "
            f"accuracy {agreement['accuracy_run']:.1%} (run) vs {agreement['accuracy_onnx']:.1%} (ONNX); "
            f"{agreement['run_ms_per_image']} vs {agreement['onnx_ms_per_image']} ms per image in batches of 256.",
        ]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medlearn-export-bench"))
    parser.add_argument("--classifier-run", type=Path)
    parser.add_argument("--runs", type=Path, nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "export.json")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if args.table_only:
        results = json.loads(args.json.read_text())
    else:
        import torch

        torch.set_num_threads(args.threads)
        args.workdir.mkdir(parents=True, exist_ok=True)
        runs = ([args.classifier_run] if args.classifier_run else []) + list(args.runs)
        rows = []
        for run in runs:
            rows.append(export_run(run, args.workdir))
            print(json.dumps(rows[-1]), flush=True)
        results = {
            "date": time.strftime("%Y-%m-%d"),
            "command": " ".join(["python", *sys.argv]),
            "threads": args.threads,
            "rows": rows,
        }
        if args.classifier_run:
            onnx_file = args.workdir / f"{args.classifier_run.parent.name}-{args.classifier_run.name}.onnx"
            results["classification"] = classification_agreement(args.classifier_run, onnx_file)
            print(json.dumps(results["classification"]), flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    table = markdown(results)
    print(table)
    replace_section(HERE / "RESULTS.md", "export", table)


if __name__ == "__main__":
    main()
