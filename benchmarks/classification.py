"""Classification benchmark on Br35H (duplicate-aware split, 2 CPU cores).

For each method: test accuracy / AUC / sensitivity / specificity with 95% bootstrap intervals,
training wall time, training and inference images/s. Also: a plain MONAI DenseNet-121 recipe as the
reference (time-to-accuracy ratio), and what a leaky random split would have reported.

    .venv/bin/python benchmarks/classification.py                 # everything (about an hour)
    .venv/bin/python benchmarks/classification.py --methods resnet10 --skip-reference --skip-leakage

Prints JSON and rewrites the classification section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inference_speed import measure_inference  # noqa: E402
from medlearn.apps.classification.train import ClassificationTrainRequest, train_classifier  # noqa: E402
from results_table import replace_section  # noqa: E402

METHODS = {
    # name: (model, image size, epochs, batch size, lr, minutes[, model kwargs])
    "cls-shallow": ("cls-shallow", 128, 40, 64, 3e-3, 7.0),
    "resnet10": ("resnet10", 128, 30, 64, 2e-3, 7.0),
    "resnet18": ("resnet18", 128, 30, 64, 2e-3, 7.0),
    "cls-multires": ("cls-multires", 128, 30, 64, 2e-3, 7.0),
    # the same tract at full resolution only: the single-resolution stream Kawahara & Hamarneh compare with
    "cls-multires-1res": ("cls-multires", 128, 30, 64, 2e-3, 7.0, {"resolutions": [1]}),
    "cls-synergic": ("cls-synergic", 128, 30, 64, 2e-3, 7.0),
}


def run_method(name: str, workdir: Path, *, group_duplicates: bool = True, seed: int = 0) -> dict:
    model, size, epochs, batch, lr, minutes, *extra = METHODS[name]
    out = workdir / f"{name}{'' if group_duplicates else '-random-split'}{f'-seed{seed}' if seed else ''}"
    request = ClassificationTrainRequest.build(
        data="br35h",
        out=out,
        overrides={
            "classification": {
                "model": model,
                "model_kwargs": extra[0] if extra else {},
                "image_size": size,
                "modality": "MR",
                "test_fraction": 0.15,
                "val_fraction": 0.15,
                "group_duplicates": group_duplicates,
            },
            "training": {"epochs": epochs, "batch_size": batch, "lr": lr, "max_minutes": minutes, "seed": seed},
        },
    )
    started = time.perf_counter()
    outcome = train_classifier(request, quiet=True)
    wall = time.perf_counter() - started
    history = json.loads((out / "metrics.json").read_text())
    m = outcome.metrics
    result = {
        "method": name,
        "seed": seed,
        "split": "duplicate-aware" if group_duplicates else "random (leaky)",
        "n_test": int(m["n"]),
        **{k: m[k] for k in ("accuracy", "auc", "sensitivity", "specificity", "balanced_accuracy", "f1")},
        **{f"{k}_ci": m[f"{k}_ci"] for k in ("accuracy", "auc", "sensitivity", "specificity")},
        "epochs": len(history),
        "train_seconds": float(sum(row["seconds"] for row in history)),
        "wall_seconds_incl_data_and_report": wall,
        "train_images_per_second": float(np.median([row["samples_per_second"] for row in history])),
        "history": [
            {"epoch": r["epoch"], "seconds": r["seconds"], "val_accuracy": r.get("val_accuracy")} for r in history
        ],
        "run_dir": str(out),
        "baseline": m.get("baseline", {}),
        "baseline_comparison": m.get("baseline_comparison"),
    }
    if group_duplicates and seed == 0:
        result["inference"] = measure_inference(out)
    return result


def seed_summary(rows: list[dict]) -> dict:
    """Mean and range over seeds of the headline metrics (the split is the same; initialisation, shuffling and
    augmentation differ), which is what a reader can expect from one more run."""
    out: dict = {"seeds": [r["seed"] for r in rows]}
    for key in ("accuracy", "auc", "balanced_accuracy"):
        values = [r[key] for r in rows]
        out[key] = {"mean": float(np.mean(values)), "min": float(min(values)), "max": float(max(values))}
    return out


def time_to_accuracy(history: list[dict], target: float, time_key: str) -> float | None:
    """Seconds until the validation accuracy first reaches ``target`` (cumulative)."""
    elapsed = 0.0
    for row in history:
        elapsed = row[time_key] if time_key == "elapsed" else elapsed + row[time_key]
        if row.get("val_accuracy") is not None and row["val_accuracy"] >= target:
            return elapsed
    return None


def run_reference(best: dict, minutes: float) -> dict:
    from medlearn.data.splits import Split
    from medlearn.evaluation.classification import bootstrap_intervals, classification_metrics
    from monai_reference import train_reference

    split = Split.from_csv(Path(best["run_dir"]) / "split.csv")  # the very same split
    as_items = lambda part: [(str(s.path), int(s.label == "yes")) for s in getattr(split, part)]  # noqa: E731
    ref = train_reference(as_items("train"), as_items("val"), as_items("test"), minutes=minutes)
    metrics = classification_metrics(ref["test_labels"], ref["test_probs"], positive=1)
    ci = bootstrap_intervals(ref["test_labels"], ref["test_probs"], positive=1, n_boot=1000, seed=0)
    ref_best = max(r["val_accuracy"] for r in ref["history"])
    t_ref = time_to_accuracy(ref["history"], ref_best, "elapsed")
    t_ours = time_to_accuracy(best["history"], ref_best, "seconds")
    return {
        "method": "MONAI DenseNet-121 reference",
        **{k: float(metrics[k]) for k in ("accuracy", "auc", "sensitivity", "specificity")},
        **{f"{k}_ci": [float(v) for v in ci[k]] for k in ("accuracy", "auc", "sensitivity", "specificity")},
        "epochs": len(ref["history"]),
        "train_seconds": ref["history"][-1]["elapsed"],
        "train_images_per_second": float(np.median([r["train_images_per_second"] for r in ref["history"]])),
        "reference_best_val_accuracy": ref_best,
        "reference_seconds_to_best": t_ref,
        "medlearn_seconds_to_same_val_accuracy": t_ours,
        "time_to_accuracy_ratio": (t_ours / t_ref) if (t_ours and t_ref) else None,
        "history": ref["history"],
    }


def leakage_counts() -> dict:
    """How many test images of a random split have a near-duplicate in train (vs the grouped split)."""
    from medlearn.data.dedup import assign_groups
    from medlearn.data.sources import br35h_samples
    from medlearn.data.splits import random_split, split_samples, straddling_groups

    grouped = assign_groups(br35h_samples())
    aware = split_samples(grouped, val=0.15, test=0.15, seed=0)
    leaky = random_split(grouped, val=0.15, test=0.15, seed=0)

    def leaked_test_images(split) -> int:
        train_groups = {s.group for s in split.train if s.group}
        return sum(1 for s in split.test if s.group and s.group in train_groups)

    return {
        "duplicate_groups": len({s.group for s in grouped if s.group and s.group.startswith("dup:")}),
        "random_split_test_images_with_duplicate_in_train": leaked_test_images(leaky),
        "random_split_straddling_groups": len(straddling_groups(leaky)),
        "grouped_split_test_images_with_duplicate_in_train": leaked_test_images(aware),
    }


def _beats(row: dict) -> str:
    """``yes (0.986 vs 0.823)`` on balanced accuracy, from the run's own baseline comparison."""
    comparison = row.get("baseline_comparison")
    if not comparison:
        return "-"
    verdict = "yes" if comparison["beaten"] else "no"
    return f"{verdict} ({comparison['model']:.3f} vs {comparison['baseline']:.3f} bal. acc.)"


def fmt_ci(value: float, ci) -> str:
    return f"{100 * value:.1f} ({100 * ci[0]:.1f}-{100 * ci[1]:.1f})"


def markdown(results: dict) -> str:
    lines = [
        f"Br35H (3000 images, 128x128 grey), duplicate-aware 70/15/15 split (seed 0), {torch.get_num_threads()} "
        f"CPU threads. Measured {results['date']} with `{results['command']}`. Values in % with 95% bootstrap "
        "intervals.",
        "",
        "| method | split | test acc | AUC | sensitivity | specificity | epochs | train s | train img/s | "
        "infer img/s (best backend) | beats the classical baseline? |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    extra_rows = [r for r in results.get("default_seeds", []) if r["seed"] != 0]
    rows = results["methods"] + extra_rows + results.get("leaky", [])
    for r in rows + ([results["reference"]] if "reference" in results else []):
        inference = r.get("inference", {})
        best = inference.get("best")
        infer = f"{inference[best]:.0f} ({best})" if best else "-"
        seed = f" (seed {r['seed']})" if r.get("seed") else ""
        lines.append(
            f"| {r['method']}{seed} | {r.get('split', 'duplicate-aware')} | "
            f"{fmt_ci(r['accuracy'], r['accuracy_ci'])} | "
            f"{fmt_ci(r['auc'], r['auc_ci'])} | {fmt_ci(r['sensitivity'], r['sensitivity_ci'])} | "
            f"{fmt_ci(r['specificity'], r['specificity_ci'])} | {r['epochs']} | {r['train_seconds']:.0f} | "
            f"{r['train_images_per_second']:.0f} | {infer} | {_beats(r)} |"
        )
    default = next((r for r in results["methods"] if r["method"] == results.get("default_method")), None)
    if default and default.get("baseline"):
        name, values = next(iter(default["baseline"].items()))
        comparison = default.get("baseline_comparison") or {}
        lines.append(
            f"| classical baseline: {name} (fitted on the same training split) | duplicate-aware | "
            f"{100 * values['accuracy']:.1f} | {100 * values['auc']:.1f} | {100 * values['sensitivity']:.1f} | "
            f"{100 * values['specificity']:.1f} | - | - | - | - | - |"
        )
        lines += [
            "",
            f"Model vs classical baseline ({results['default_method']}, seed 0): {comparison.get('text', '')}",
        ]
    if results.get("seed_summary"):
        summary = results["seed_summary"]
        accuracy, auc = summary["accuracy"], summary["auc"]
        lines += [
            "",
            f"{results['default_method']} over seeds {', '.join(map(str, summary['seeds']))} (same split): test "
            f"accuracy mean {100 * accuracy['mean']:.1f}% "
            f"(range {100 * accuracy['min']:.1f}-{100 * accuracy['max']:.1f}), "
            f"AUC mean {auc['mean']:.3f} (range {auc['min']:.3f}-{auc['max']:.3f}). `make demo` trains this model on "
            "this split with seed 0 and the pinned versions of requirements.lock: a fresh clone should reproduce the "
            "seed-0 row; a different seed, machine load within the budget, or other versions land within about this "
            "range.",
        ]
    if "reference" in results:
        ref = results["reference"]
        ratio = ref["time_to_accuracy_ratio"]
        lines += [
            "",
            f"Time to accuracy: the MONAI reference reached its best validation accuracy "
            f"{100 * ref['reference_best_val_accuracy']:.1f}% after {ref['reference_seconds_to_best']:.0f} s; "
            f"medlearn's default ({results['best_method']}) reached it after "
            + (
                f"{ref['medlearn_seconds_to_same_val_accuracy']:.0f} s: ratio {ratio:.2f}."
                if ratio
                else "never (ratio undefined)."
            ),
        ]
    if "leakage" in results:
        lk = results["leakage"]
        lines += [
            "",
            f"Leakage: {lk['duplicate_groups']} near-duplicate groups. A random split puts "
            f"{lk['random_split_test_images_with_duplicate_in_train']} test images next to a duplicate in train "
            f"({lk['random_split_straddling_groups']} groups straddle); the duplicate-aware split puts "
            f"{lk['grouped_split_test_images_with_duplicate_in_train']}.",
        ]
    if results.get("command_earlier"):
        lines += ["", f"Rows not re-run come from `{results['command_earlier']}` ({results.get('date_earlier')})."]
    if results.get("inference_detail"):
        lines += [
            "",
            "Inference images/s at 128x128, batch 256, by backend (default model): "
            + ", ".join(f"{k} {v:.0f}" for k, v in results["inference_detail"].items() if k != "best"),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--reference-minutes", type=float, default=10.0)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-leakage", action="store_true")
    parser.add_argument("--default-method", default="cls-multires", help="The method run over --seeds.")
    parser.add_argument("--table-only", action="store_true", help="Rewrite RESULTS.md from --json, run nothing.")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="Seeds of the default method.")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "classification.json")
    parser.add_argument(
        "--merge", action="store_true", help="Keep earlier results of methods (and reference/leakage) not re-run."
    )
    args = parser.parse_args()
    if args.table_only:
        table = markdown(json.loads(args.json.read_text()))
        replace_section(HERE / "RESULTS.md", "classification", table)
        print(table)
        return
    torch.set_num_threads(2)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="medlearn-bench-"))
    shutil.rmtree(workdir, ignore_errors=True)
    results: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "methods": [],
    }
    earlier = json.loads(args.json.read_text()) if args.merge and args.json.exists() else {}
    for name in args.methods:
        print(f"== {name}", flush=True)
        results["methods"].append(run_method(name, workdir))
        print(json.dumps({k: v for k, v in results["methods"][-1].items() if k != "history"}), flush=True)
    if args.default_method in args.methods:
        first = next(r for r in results["methods"] if r["method"] == args.default_method)
        results["default_seeds"] = [first] + [
            run_method(args.default_method, workdir, seed=seed) for seed in args.seeds if seed != first["seed"]
        ]
        results["seed_summary"] = seed_summary(results["default_seeds"])
    elif earlier.get("default_seeds"):
        results["default_seeds"], results["seed_summary"] = earlier["default_seeds"], earlier.get("seed_summary")
    results["default_method"] = args.default_method
    rerun = {r["method"] for r in results["methods"]}
    results["methods"] += [r for r in earlier.get("methods", []) if r["method"] not in rerun]
    results["methods"].sort(key=lambda r: list(METHODS).index(r["method"]) if r["method"] in METHODS else 99)
    for key in ("leakage", "leaky", "reference", "command", "date"):
        if key in earlier and (
            key in ("command", "date")
            or args.skip_reference
            and key == "reference"
            or args.skip_leakage
            and key in ("leakage", "leaky")
        ):
            results.setdefault(key + "_earlier" if key in ("command", "date") else key, earlier[key])
    best = next(r for r in results["methods"] if r["method"] == args.default_method)  # medlearn's default
    results["best_method"] = best["method"]
    results["inference_detail"] = best.get("inference")
    if not args.skip_leakage:
        results["leakage"] = leakage_counts()
        results["leaky"] = [run_method(best["method"], workdir, group_duplicates=False)]
    if not args.skip_reference:
        results["reference"] = run_reference(best, args.reference_minutes)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=float))
    table = markdown(results)
    replace_section(HERE / "RESULTS.md", "classification", table)
    print(json.dumps({k: v for k, v in results.items() if k not in ("methods", "leaky")}, indent=2, default=float))
    print(table)


if __name__ == "__main__":
    main()
