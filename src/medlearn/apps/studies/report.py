"""``report.html`` of the label-scarce augmentation study (:mod:`medlearn.apps.studies.augmentation`).

One self-contained page from the study document (``study.json``): the issue's target and the per-arm
verdicts in plain words, accuracy/sensitivity/specificity against the share of labels with t-interval
error bars, per-cell and paired-difference tables, real next to synthetic images, every run, the
denoising pre-training, the method and the settings. Kept apart from the study so that the study module
holds the protocol only, and so that matplotlib is loaded only when a report is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.apps.studies.runs import REPORTED_METRICS, run_directory
from medlearn.report import plots
from medlearn.report.html import Report


def write_study_report(path: Path, document: dict, out: Path) -> Path:
    """``report.html``: verdicts, the accuracy/sensitivity/specificity-vs-labels plot, tables, methods."""
    settings = document["settings"]
    data = document["data"]
    report = Report(
        "Label-scarce augmentation study",
        f"{settings['model']} on {data['source']} at {', '.join(f'{f:.0%}' for f in settings['fractions'])} of the "
        f"training labels, {settings['seeds']} seed(s), arms: {', '.join(settings['arms'])}",
    )
    target = document["target"]
    verdict_lines = [
        f"{c['arm']} vs classic at {c['fraction']:.0%} labels: {c['verdict']} "
        f"({_points(c['accuracy_difference'])} accuracy points)"
        for c in document["comparisons"]
    ]
    report.add_summary("Summary")
    report.add_text(target["statement"], title="The issue's target")
    if verdict_lines:
        report.add_text("\n\n".join(verdict_lines), title="Did synthetic data / pre-training help?")
    report.add_text(
        f"Test set: {data['n_test']} images, never trained on; training part: {data['n_train']} images in "
        f"{data['train_groups']} duplicate-aware groups. Intervals are {settings['confidence']:.0%} t-intervals over "
        "seeds.",
        note=True,
    )
    report.add_section("Metrics against the share of labels")
    report.add_image(
        None,
        plots.metrics_vs_fraction_plot(document["summary"], settings["arms"], REPORTED_METRICS),
        caption="Mean over seeds with t-interval error bars (none with a single seed); positive class "
        f"'{data['positive_class']}'.",
    )
    rows = []
    for entry in document["summary"]:
        rows.append(
            [
                entry["arm"],
                f"{entry['fraction']:.0%}",
                entry["n_labelled_mean"],
                len(entry["seeds"]),
                *(_percent_interval(entry[m]) for m in REPORTED_METRICS),
            ]
        )
    report.add_table(
        "Per arm and fraction",
        rows,
        ["arm", "labels", "labelled images", "seeds", "accuracy %", "sensitivity %", "specificity %"],
    )
    comparison_rows = [
        [
            c["arm"],
            f"{c['fraction']:.0%}",
            len(c["seeds"]),
            *(_points(c[f"{m}_difference"]) for m in REPORTED_METRICS),
            c["verdict"],
        ]
        for c in document["comparisons"]
    ]
    report.add_table(
        "Paired differences to classic (points)",
        comparison_rows,
        ["arm", "labels", "pairs", "accuracy", "sensitivity", "specificity", "verdict"],
    )
    preview = _synthetic_preview(out, document)
    if preview:
        report.add_section("Synthetic images")
        report.add_image(None, plots.sample_montage(preview[0], ncols=8), caption=preview[1])
    report.add_section("Runs")
    run_columns = [
        *("arm", "fraction", "seed", "n_labelled", "n_synthetic", "epochs", "steps", "init"),
        *("accuracy", "sensitivity", "specificity", "auc", "train_seconds"),
    ]
    report.add_table(
        None,
        [[r[c] for c in run_columns] for r in document["runs"]],
        run_columns,
        collapsed=f"all {len(document['runs'])} runs",
    )
    if document["pretraining"]:
        report.add_table(
            "Denoising pre-training",
            [
                [p["seed"], p["images"], p["epochs"], p["first_epoch_loss"], p["last_epoch_loss"], p["seconds"]]
                for p in document["pretraining"]
            ],
            ["seed", "images", "epochs", "first epoch MSE", "last epoch MSE", "seconds"],
        )
    report.add_section("Method")
    report.add_kv(None, document["method"])
    report.add_kv("Settings", {k: v for k, v in settings.items()})
    return report.write(path)


def _percent_interval(stat: dict) -> str:
    if stat["mean"] is None:
        return "–"
    if stat["low"] is None:
        return f"{100 * stat['mean']:.1f}"
    return f"{100 * stat['mean']:.1f} ({100 * stat['low']:.1f}–{100 * stat['high']:.1f})"


def _points(stat: dict) -> str:
    if stat["mean"] is None:
        return "–"
    if stat["low"] is None:
        return f"{100 * stat['mean']:+.1f}"
    return f"{100 * stat['mean']:+.1f} ({100 * stat['low']:+.1f} to {100 * stat['high']:+.1f})"


def _synthetic_preview(out: Path, document: dict) -> tuple[list, str] | None:
    """Real and synthetic images of the smallest fraction's first gan run, per class, for the report."""
    gan_runs = sorted((r for r in document["runs"] if r["arm"] == "gan"), key=lambda r: (r["fraction"], r["seed"]))
    if not gan_runs:
        return None
    first = gan_runs[0]
    file = run_directory(out, "gan", first["fraction"], first["seed"]) / "synthetic_preview.npz"
    if not file.is_file():
        return None
    classes = document["data"]["classes"]
    items = []
    with np.load(file) as stored:
        for k in np.unique(stored["labels"]):
            items += [
                (_display(a), f"real {classes[int(k)]}") for a in stored["real_images"][stored["real_labels"] == k]
            ]
            items += [(_display(a), f"synthetic {classes[int(k)]}") for a in stored["images"][stored["labels"] == k]]
    caption = (
        f"Real labelled images and synthesizer output of the gan run at {first['fraction']:.0%} labels, "
        f"seed {first['seed']} (one row per class: real first, then synthetic)."
    )
    return items, caption


def _display(array: np.ndarray) -> np.ndarray:
    """First channel scaled to [0, 1] (0.5-99.5 percentiles) for display: inputs may be z-scored."""
    image = np.asarray(array[0], dtype=np.float32)
    low, high = np.percentile(image, [0.5, 99.5])
    return np.clip((image - low) / max(high - low, 1e-6), 0, 1)
