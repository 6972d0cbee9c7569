"""The classification report: one HTML page a clinician can read from the top and an engineer
can audit to the bottom (data, training, metrics with intervals, calibration, Grad-CAM, setup).

Inputs are plain Python/numpy values gathered by the training and evaluation code; this module only
turns them into words, tables and figures. Expected shapes of the dictionaries:

- ``summary``: optional keys ``model``, ``dataset``, ``task`` (e.g. "detect a brain tumour on one
  MRI slice"), ``positive_description`` / ``negative_description`` (e.g. "patients with a tumour"),
  ``caveats`` (list of extra sentences); any other key is shown in an "at a glance" table.
- ``data_summary``: ``counts`` ({split: {class name: count}}), ``duplicate_groups`` (an int, or a
  list of groups, each a list of file names), ``skipped`` (list of file names, ``(file, reason)``
  pairs or ``{"path", "reason"}`` dicts); other keys (``source``, ``split``...) go to a table.
- ``metrics``: :func:`medlearn.evaluation.classification.metrics_with_intervals` output; with the key
  ``baseline`` ({name: {metric: value}}, possibly empty), also ``baseline_comparison``
  (:meth:`medlearn.evaluation.baselines.BaselineComparison.to_dict`) and ``baseline_note``, the summary
  shows the model beside its classical baseline and warns when the model does not beat it.
- ``calibration``: ``ece_before``, ``ece_after``, ``temperature``, ``probs_calibrated``.
- ``gradcam``: {"true positive" | "false positive" | "true negative" | "false negative": list of
  ``(image HxW, cam HxW, caption)``}; a missing or empty category is reported as "none".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.classification import DESCRIPTION as _LOGISTIC_BASELINE
from medlearn.evaluation.baselines.classification import NAME as _LOGISTIC_NAME
from medlearn.evaluation.calibration import expected_calibration_error
from medlearn.evaluation.classification import METRIC_NAMES, as_probability_matrix, confusion
from medlearn.report import plots
from medlearn.report.html import Markup, Report, escape, table_html

SECTION_TITLES = (
    "Summary for clinicians",
    "Data",
    "Training curves",
    "Test metrics",
    "ROC curve",
    "Confusion matrix",
    "Calibration",
    "Grad-CAM: where the model looked",
    "Configuration",
    "Environment",
)
GRADCAM_CATEGORIES = ("true positive", "false positive", "true negative", "false negative")

_METRIC_LABELS = {
    "accuracy": ("Accuracy", "share of all test images classified correctly"),
    "balanced_accuracy": ("Balanced accuracy", "mean of the per-class hit rates; not fooled by class imbalance"),
    "auc": ("ROC AUC", "chance that a random positive case scores higher than a random negative one"),
    "sensitivity": ("Sensitivity (recall)", "share of positive cases the model flags"),
    "specificity": ("Specificity", "share of negative cases the model correctly clears"),
    "precision": ("Precision (PPV)", "share of flagged cases that are truly positive (depends on prevalence)"),
    "f1": ("F1 score", "harmonic mean of precision and sensitivity"),
}
#: Plain-words descriptions of the classical baselines, by the name they are stored under.
_BASELINE_DESCRIPTIONS = {_LOGISTIC_NAME: _LOGISTIC_BASELINE}
_MULTICLASS_MEANING = {
    "sensitivity": "mean over classes of the share of each class recognised (macro recall)",
    "specificity": "mean over classes of the share of other-class images not assigned to it",
    "precision": "mean over classes of the share of assignments to a class that are right",
    "f1": "mean over classes of the per-class F1 score",
    "auc": "mean over classes of the one-vs-rest ROC AUC",
}


# ------------------------------------------------------------------------------------------------
# number formatting


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _pct(value: Any, digits: int = 1) -> str:
    return f"{float(value) * 100:.{digits}f}%" if _finite(value) else "n/a"


def _interval(ci: Any, as_percent: bool) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or not all(_finite(v) for v in ci):
        return "–"
    if as_percent:
        return f"{float(ci[0]) * 100:.1f}–{float(ci[1]) * 100:.1f}%"
    return f"{float(ci[0]):.3f}–{float(ci[1]):.3f}"


def _value(name: str, value: Any) -> str:
    if not _finite(value):
        return "n/a"
    return f"{float(value):.3f}" if name == "auc" else _pct(value)


def _per_100(value: Any) -> str:
    return str(round(float(value) * 100)) if _finite(value) else "an unknown number"


# ------------------------------------------------------------------------------------------------
# section builders


def _split_sizes(data_summary: Mapping[str, Any]) -> dict[str, int]:
    counts = data_summary.get("counts") or {}
    return {split: int(sum(per_class.values())) for split, per_class in counts.items()}


def _duplicate_groups(data_summary: Mapping[str, Any]) -> tuple[int | None, list[list[str]]]:
    groups = data_summary.get("duplicate_groups")
    if groups is None:
        return None, []
    if isinstance(groups, int):
        return groups, []
    listed = [[str(f) for f in group] for group in groups]
    return len(listed), listed


def _skipped(data_summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for item in data_summary.get("skipped") or []:
        if isinstance(item, Mapping):
            out.append((str(item.get("path", "")), str(item.get("reason", ""))))
        elif isinstance(item, (list, tuple)):
            out.append((str(item[0]), str(item[1]) if len(item) > 1 else ""))
        else:
            out.append((str(item), ""))
    return out


def _summary_section(
    report: Report,
    summary: Mapping[str, Any],
    data_summary: Mapping[str, Any],
    metrics: Mapping[str, Any],
    class_names: Sequence[str],
    positive: int,
    cm: np.ndarray,
    calibration: Mapping[str, Any] | None,
) -> None:
    """The highlighted first section: what was done, the headline figures, what they mean, the classical
    baseline and the caveats."""
    _summary_intro(report, summary, data_summary, metrics, class_names, cm)
    _summary_meaning(report, summary, metrics, class_names, positive, cm)
    _baseline_part(report, metrics)
    _summary_caveats(report, summary, data_summary, calibration)


def _summary_intro(
    report: Report,
    summary: Mapping[str, Any],
    data_summary: Mapping[str, Any],
    metrics: Mapping[str, Any],
    class_names: Sequence[str],
    cm: np.ndarray,
) -> None:
    binary = len(class_names) == 2
    sizes = _split_sizes(data_summary)
    n_test = int(metrics.get("n") or cm.sum())
    model = summary.get("model", "A neural network")
    dataset = summary.get("dataset")
    task = summary.get("task") or "tell apart images of the classes " + ", ".join(f"“{n}”" for n in class_names)
    trained_on = sizes.get("train")
    tuned_on = sizes.get("val", sizes.get("validation"))
    sentences = [f"{model} was trained to {task}"]
    if dataset:
        sentences[-1] += f", using the {dataset} data set"
    sentences[-1] += "."
    if trained_on is not None:
        tuned = f", was tuned on {tuned_on:,} more" if tuned_on is not None else ""
        sentences.append(
            f"It learned from {trained_on:,} images{tuned}, and was then tested on {n_test:,} images it had never seen."
        )
    else:
        sentences.append(f"It was tested on {n_test:,} images it had never seen.")
    intro = " ".join(sentences)

    body = [f"<p>{escape(intro)}</p>"]
    report.add_summary(SECTION_TITLES[0], "".join(body))
    level = int(round(100 * float(metrics.get("ci_level", 0.95))))
    stats = []
    for name in ("accuracy", "sensitivity", "specificity", "auc"):
        label = _METRIC_LABELS[name][0].split(" (")[0]
        if not binary and name in ("sensitivity", "specificity"):
            label = f"Mean {label.lower()}"
        ci = _interval(metrics.get(f"{name}_ci"), name != "auc")
        stats.append((label, _value(name, metrics.get(name)), f"{level}% CI {ci}" if ci != "–" else ""))
    report.add_stats(None, stats)


def _summary_meaning(
    report: Report,
    summary: Mapping[str, Any],
    metrics: Mapping[str, Any],
    class_names: Sequence[str],
    positive: int,
    cm: np.ndarray,
) -> None:
    level = int(round(100 * float(metrics.get("ci_level", 0.95))))
    if len(class_names) == 2:
        meaning = _binary_meaning(summary, metrics, class_names, positive, cm, level)
    else:
        meaning = _multiclass_meaning(metrics, class_names, cm)
    meaning.append(
        f"The ranges in brackets are {level}% confidence intervals: with a different test set of the "
        "same size, the result would usually fall inside them."
    )
    report.add_html(
        Markup("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in meaning) + "</ul>"),
        "What the numbers mean",
    )


def _binary_meaning(
    summary: Mapping[str, Any],
    metrics: Mapping[str, Any],
    class_names: Sequence[str],
    positive: int,
    cm: np.ndarray,
    level: int,
) -> list[str]:
    meaning: list[str] = []
    pos_name, neg_name = class_names[positive], class_names[1 - positive]
    pos_desc = summary.get("positive_description") or f"cases labelled “{pos_name}”"
    neg_desc = summary.get("negative_description") or f"cases labelled “{neg_name}”"
    sens, spec = metrics.get("sensitivity"), metrics.get("specificity")
    sens_ci = _interval(metrics.get("sensitivity_ci"), True)
    spec_ci = _interval(metrics.get("specificity_ci"), True)
    meaning.append(
        f"Of 100 {pos_desc}, the model flags about {_per_100(sens)} and misses about "
        f"{_per_100(1 - float(sens)) if _finite(sens) else 'an unknown number'} "
        f"(sensitivity {_pct(sens)}, {level}% CI {sens_ci})."
    )
    meaning.append(
        f"Of 100 {neg_desc}, it correctly clears about {_per_100(spec)} and raises a false alarm for "
        f"about {_per_100(1 - float(spec)) if _finite(spec) else 'an unknown number'} "
        f"(specificity {_pct(spec)}, {level}% CI {spec_ci})."
    )
    prevalence = cm[positive].sum() / max(cm.sum(), 1)
    if _finite(metrics.get("precision")):
        meaning.append(
            f"In this test set, {_pct(prevalence, 0)} of images were “{pos_name}”, and when the model "
            f"flagged an image it was right {_pct(metrics['precision'], 0)} of the time. Where the "
            "condition is rarer (as in most screening settings) a larger share of alarms will be false."
        )
    return meaning


def _multiclass_meaning(metrics: Mapping[str, Any], class_names: Sequence[str], cm: np.ndarray) -> list[str]:
    recall = np.diag(cm) / np.maximum(cm.sum(axis=1), 1)
    present = cm.sum(axis=1) > 0
    meaning = [
        f"Averaged over the {len(class_names)} classes, the model assigns about "
        f"{_per_100(metrics.get('balanced_accuracy'))} of every 100 images to their correct class."
    ]
    if present.any():
        worst = int(np.argmin(np.where(present, recall, np.inf)))
        best = int(np.argmax(np.where(present, recall, -np.inf)))
        meaning.append(
            f"It is most reliable for “{class_names[best]}” ({_pct(recall[best])} recognised) and least "
            f"reliable for “{class_names[worst]}” ({_pct(recall[worst])} recognised)."
        )
    return meaning


def _baseline_part(report: Report, metrics: Mapping[str, Any]) -> None:
    """The model beside its classical baseline on the same test images; when the model does not beat it, a
    warning box says so in plain words (a network that a simple method matches should not be used as is)."""
    if "baseline" not in metrics:
        return  # metrics from a caller that scores no baseline
    title = "Classical baseline"
    baselines: Mapping[str, Mapping[str, Any]] = metrics.get("baseline") or {}
    note = metrics.get("baseline_note")
    if not baselines:
        report.add_text(note or "No classical baseline was scored for this evaluation.", title, note=True)
        return
    comparison: Mapping[str, Any] = metrics.get("baseline_comparison") or {}
    name = str(comparison.get("baseline_name") or next(iter(baselines)))
    scores = baselines.get(name) or {}
    method = _BASELINE_DESCRIPTIONS.get(name, "a classical (non-deep) method fitted on the same training images")
    rows = [
        [_METRIC_LABELS[m][0], _value(m, metrics.get(m)), _value(m, scores.get(m))]
        for m in ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1")
    ]
    intro = (
        f"A network is only worth its cost if it beats a simple method. The baseline “{name}” is {method}; "
        "it was scored on exactly the same test images as the model."
    )
    verdict = str(comparison.get("text") or "")
    if comparison and not comparison.get("beaten"):
        verdict_html = f'<div class="callout"><strong>Warning:</strong> {escape(verdict)}</div>'
    else:
        verdict_html = f"<p><strong>{escape(verdict)}</strong></p>" if verdict else ""
    table = table_html(rows, ["metric", "this model", f"classical baseline ({name})"])
    extra = f'<p class="caption">{escape(note)}</p>' if note else ""
    report.add_html(Markup(f"<p>{escape(intro)}</p>{verdict_html}{table}{extra}"), title)


def _summary_caveats(
    report: Report,
    summary: Mapping[str, Any],
    data_summary: Mapping[str, Any],
    calibration: Mapping[str, Any] | None,
) -> None:
    dataset = summary.get("dataset")
    n_groups, _ = _duplicate_groups(data_summary)
    caveats = [
        "All images come from a single source"
        + (f" ({dataset})" if dataset else "")
        + "; performance on images from other hospitals, scanners or patient groups is unknown and "
        "is usually lower.",
    ]
    if n_groups is not None:
        caveats.append(
            f"Near-duplicate images were searched for and {n_groups:,} groups were found; each group was kept "
            "inside one split, so the test score is not inflated by images the model had already seen."
        )
    else:
        caveats.append(
            "No duplicate check was recorded: if the same patient or image appears in training and "
            "test data, the test score overestimates real performance."
        )
    if calibration and _finite(calibration.get("ece_after")):
        caveats.append(
            "The probabilities were recalibrated on validation data (temperature scaling); the remaining "
            f"average gap between stated confidence and observed accuracy is {_pct(calibration['ece_after'])}."
        )
    caveats.extend(str(c) for c in summary.get("caveats") or [])
    caveats.append(
        "This is research software, not a medical device. It must not be used to diagnose or treat patients."
    )
    report.add_html(
        Markup(
            '<div class="callout"><strong>Caveats</strong><ul>'
            + "".join(f"<li>{escape(c)}</li>" for c in caveats)
            + "</ul></div>"
        ),
        None,
    )
    known = {"model", "dataset", "task", "positive_description", "negative_description", "caveats"}
    extra = {k.replace("_", " "): v for k, v in summary.items() if k not in known}
    if extra:
        report.add_kv("At a glance", extra)


def _data_section(
    report: Report,
    data_summary: Mapping[str, Any],
    montage: Sequence[tuple[np.ndarray, str]],
    class_names: Sequence[str],
) -> None:
    report.add_section(SECTION_TITLES[1])
    counts: Mapping[str, Mapping[str, int]] = data_summary.get("counts") or {}
    names = list(class_names)
    for per_class in counts.values():
        names.extend(n for n in per_class if n not in names)
    rows = []
    totals = dict.fromkeys(names, 0)
    for split, per_class in counts.items():
        total = sum(per_class.values())
        row: list[Any] = [split]
        for name in names:
            c = int(per_class.get(name, 0))
            totals[name] += c
            row.append(f"{c:,} ({_pct(c / total if total else math.nan, 0)})")
        row.append(f"{total:,}")
        rows.append(row)
    if rows:
        grand = sum(totals.values())
        rows.append(
            ["all"]
            + [f"{totals[n]:,} ({_pct(totals[n] / grand if grand else math.nan, 0)})" for n in names]
            + [f"{grand:,}"]
        )
    report.add_table(
        "Split sizes and class balance",
        rows,
        ["split", *names, "total"],
        caption="Images per class in each split (share of the split in brackets).",
    )
    if montage:
        report.add_image(
            "Example images",
            plots.sample_montage(list(montage), ncols=6),
            caption="Randomly chosen training images with their labels, as the model sees them after preprocessing.",
        )
    n_groups, groups = _duplicate_groups(data_summary)
    if n_groups is None:
        report.add_text("No duplicate search was recorded for this run.", "Duplicate groups", note=True)
    else:
        shown = groups[:20]
        rows = [
            [i, len(g), ", ".join(Path(f).name for f in g[:4]) + (" …" if len(g) > 4 else "")]
            for i, g in enumerate(shown, 1)
        ]
        caption = (
            f"{n_groups:,} groups of near-identical images were found; every group was kept inside a single "
            "split so that no test image has a copy in the training data."
        )
        if len(groups) > len(shown):
            caption += f" The first {len(shown)} are listed."
        if groups:
            report.add_table(
                "Duplicate groups",
                rows,
                ["group", "images", "files"],
                caption=caption,
                collapsed=f"Show {len(shown)} of {n_groups:,} groups",
            )
        else:
            report.add_text(caption, "Duplicate groups")
    skipped = _skipped(data_summary)
    if skipped:
        rows = [[Path(p).name or p, reason] for p, reason in skipped[:50]]
        caption = f"{len(skipped):,} files could not be used and were left out."
        if len(skipped) > 50:
            caption += " The first 50 are listed."
        report.add_table("Skipped files", rows, ["file", "reason"], caption=caption)
    else:
        report.add_text("No files were skipped.", "Skipped files", note=True)
    known = {"counts", "duplicate_groups", "skipped"}
    extra = {k.replace("_", " "): v for k, v in data_summary.items() if k not in known}
    if extra:
        report.add_kv("Data source and split", extra)


def _training_section(report: Report, history: Sequence[Mapping[str, Any]], monitor: str, monitor_mode: str) -> None:
    report.add_section(SECTION_TITLES[2])
    if not history:
        report.add_text("No training history was recorded.", note=True)
        return
    key = plots.monitor_key(history, monitor)
    scored = [(row.get("epoch", i + 1), row.get(key)) for i, row in enumerate(history) if _finite(row.get(key))]
    text = f"Training ran for {len(history)} epochs."
    if scored:
        pick = max if monitor_mode == "max" else min
        epoch, value = pick(scored, key=lambda item: float(item[1]))
        text += (
            f" The checkpoint kept for testing is from epoch {epoch}, where {plots.pretty_metric(key)} "
            f"was best ({float(value):.4f})."
        )
    seconds = [float(row["seconds"]) for row in history if _finite(row.get("seconds"))]
    if seconds:
        text += f" Total training time: {sum(seconds) / 60:.1f} minutes."
    report.add_text(text)
    report.add_image(
        None,
        plots.training_curves(history, monitor, monitor_mode),
        caption="Validation loss rising while training loss keeps falling would indicate over-fitting; "
        "the dashed line marks the kept epoch.",
    )
    columns = [c for c in history[0] if c != "epoch"]
    for row in history[1:]:
        columns.extend(c for c in row if c != "epoch" and c not in columns)
    rows = [[row.get("epoch", i + 1), *(row.get(c) for c in columns)] for i, row in enumerate(history)]
    report.add_table(None, rows, ["epoch", *columns], collapsed="Per-epoch values")


def _metrics_section(
    report: Report, metrics: Mapping[str, Any], cm: np.ndarray, class_names: Sequence[str], positive: int
) -> None:
    report.add_section(SECTION_TITLES[3])
    binary = len(class_names) == 2
    rows = []
    for name in METRIC_NAMES:
        label, meaning = _METRIC_LABELS[name]
        if not binary:
            meaning = _MULTICLASS_MEANING.get(name, meaning)
        rows.append(
            [label, _value(name, metrics.get(name)), _interval(metrics.get(f"{name}_ci"), name != "auc"), meaning]
        )
    level = int(round(100 * float(metrics.get("ci_level", 0.95))))
    n_boot = metrics.get("n_boot")
    caption = f"Test set of {int(metrics.get('n') or cm.sum()):,} images. Intervals: {level}% percentile bootstrap" + (
        f" over {int(n_boot):,} resamples of the test images." if n_boot else "."
    )
    if binary:
        caption += f" Positive class: “{class_names[positive]}”; predictions are the most probable class."
    report.add_table(None, rows, ["metric", "value", f"{level}% CI", "meaning"], caption=caption)

    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    per_class = []
    for i, name in enumerate(class_names):
        fp = predicted[i] - tp[i]
        tn = cm.sum() - support[i] - fp
        per_class.append(
            [
                name,
                int(support[i]),
                _pct(tp[i] / support[i] if support[i] else math.nan),
                _pct(tn / (tn + fp) if tn + fp else math.nan),
                _pct(tp[i] / predicted[i] if predicted[i] else math.nan),
            ]
        )
    report.add_table("Per class", per_class, ["class", "test images", "recall", "specificity", "precision"])


def _roc_section(report: Report, y: np.ndarray, probs: np.ndarray, class_names: Sequence[str], positive: int) -> None:
    report.add_section(SECTION_TITLES[4])
    report.add_image(
        None,
        plots.roc_plot(y, probs, positive, class_names),
        caption="Each point of the curve is one decision threshold: lowering it flags more positives "
        "(higher sensitivity) at the price of more false alarms. The circle is the threshold used in "
        "this report (most probable class).",
    )


def _confusion_section(report: Report, cm: np.ndarray, class_names: Sequence[str], positive: int) -> None:
    report.add_section(SECTION_TITLES[5])
    if len(class_names) == 2:
        p, n = positive, 1 - positive
        text = (
            f"Of {cm[p].sum():,} test images labelled “{class_names[p]}”, {cm[p, p]:,} were flagged "
            f"(true positives) and {cm[p, n]:,} were missed (false negatives). Of {cm[n].sum():,} labelled "
            f"“{class_names[n]}”, {cm[n, n]:,} were correctly cleared (true negatives) and {cm[n, p]:,} were "
            "false alarms (false positives)."
        )
    else:
        text = "Rows are the true classes, columns the predictions; the diagonal holds the correct answers."
    report.add_text(text)
    report.add_image(None, plots.confusion_matrix_plot(cm, class_names))


def _calibration_section(
    report: Report, y: np.ndarray, probs: np.ndarray, calibration: Mapping[str, Any] | None
) -> None:
    report.add_section(SECTION_TITLES[6])

    calibration = calibration or {}
    after = calibration.get("probs_calibrated")
    temperature = calibration.get("temperature")
    ece_before = calibration.get("ece_before")
    if not _finite(ece_before):
        ece_before = expected_calibration_error(probs, y)
    ece_after = calibration.get("ece_after")
    if not _finite(ece_after) and after is not None:
        ece_after = expected_calibration_error(after, y)
    stats = [("ECE before scaling", _pct(ece_before), "raw model probabilities")]
    if _finite(ece_after):
        stats.append(("ECE after scaling", _pct(ece_after), "temperature-scaled probabilities"))
    if _finite(temperature):
        stats.append(("Temperature T", f"{float(temperature):.2f}", "fitted on the validation set"))
    report.add_stats(None, stats)
    text = (
        "A well-calibrated model that says “90% sure” is right about 90% of the time. The expected "
        "calibration error (ECE) is the average gap between stated confidence and observed accuracy; "
        "0% is perfect."
    )
    if _finite(temperature):
        t = float(temperature)
        direction = (
            "the raw model was over-confident, so its probabilities were softened"
            if t > 1.05
            else "the raw model was under-confident, so its probabilities were sharpened"
            if t < 0.95
            else "the raw probabilities needed almost no correction"
        )
        text += (
            f"\n\nTemperature scaling divides the model's scores by one number, T = {t:.2f}, fitted on the "
            f"validation images: {direction}. It never changes which class is predicted, so accuracy, "
            "sensitivity and specificity are unaffected."
        )
    report.add_text(text)
    report.add_image(
        None,
        plots.reliability_diagram(y, probs, after, temperature=float(temperature) if _finite(temperature) else None),
        caption="Points below the diagonal: the model is more confident than it is accurate.",
    )


def _gradcam_section(
    report: Report,
    gradcam: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray, str]]] | None,
    class_names: Sequence[str],
    positive: int,
) -> None:
    report.add_section(SECTION_TITLES[7])
    report.add_text(
        "Grad-CAM highlights the image regions that most increased the score of the predicted class "
        "(red = strongest). It shows where the model looked, not why, and a plausible-looking map is no "
        "proof that the model reasons correctly; maps that light up text, borders or the background are "
        "a warning sign of shortcut learning."
    )
    gradcam = gradcam or {}
    binary = len(class_names) == 2
    pos = class_names[positive] if binary else None
    neg = class_names[1 - positive] if binary else None
    explain = {
        "true positive": f"truly “{pos}”, predicted “{pos}”",
        "false positive": f"truly “{neg}”, predicted “{pos}”",
        "true negative": f"truly “{neg}”, predicted “{neg}”",
        "false negative": f"truly “{pos}”, predicted “{neg}”",
    }
    keys = list(GRADCAM_CATEGORIES) + [k for k in gradcam if k not in GRADCAM_CATEGORIES]
    for key in keys:
        items = list(gradcam.get(key) or [])
        title = key[:1].upper() + key[1:] + "s"
        if binary and key in explain:
            title += f" ({explain[key]})"
        if items:
            report.add_image(title, plots.gradcam_grid(items, ncols=4))
        else:
            report.add_text(f"None: the test set has no {key}s to show.", title, note=True)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# ------------------------------------------------------------------------------------------------


def write_classification_report(
    path: str | Path,
    *,
    title: str,
    summary: Mapping[str, Any],
    config: Mapping[str, Any],
    environment: Mapping[str, Any],
    data_summary: Mapping[str, Any],
    montage: Sequence[tuple[np.ndarray, str]],
    history: Sequence[Mapping[str, Any]],
    monitor: str,
    class_names: Sequence[str],
    positive: int,
    y_true: np.ndarray,
    probs: np.ndarray,
    metrics: Mapping[str, Any],
    calibration: Mapping[str, Any] | None,
    gradcam: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray, str]]] | None,
    monitor_mode: str = "max",
    subtitle: str = "",
) -> Path:
    """Render the ten-section classification report to one self-contained HTML file at ``path``.

    The page is built completely in memory and written atomically: on any error nothing is written.
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    try:
        p = as_probability_matrix(probs)
    except MedlearnError as error:
        raise MedlearnError(error.problem, path) from None
    k = p.shape[1]
    if len(class_names) != k:
        raise MedlearnError(f"{len(class_names)} class names for {k} predicted classes", path)
    if len(y) != len(p) or len(y) == 0:
        raise MedlearnError(f"{len(y)} test labels but {len(p)} rows of probabilities", path)
    if y.min() < 0 or y.max() >= k or not 0 <= positive < k:
        raise MedlearnError(f"labels and positive class must lie in 0..{k - 1}", path)
    names = [str(n) for n in class_names]
    cm = confusion(y, p.argmax(axis=1), k)

    report = Report(title, subtitle=subtitle)
    _summary_section(report, summary, data_summary, metrics, names, positive, cm, calibration)
    _data_section(report, data_summary, montage, names)
    _training_section(report, history, monitor, monitor_mode)
    _metrics_section(report, metrics, cm, names, positive)
    _roc_section(report, y, p, names, positive)
    _confusion_section(report, cm, names, positive)
    _calibration_section(report, y, p, calibration)
    _gradcam_section(report, gradcam, names, positive)
    report.add_section(SECTION_TITLES[8])
    report.add_kv(None, _flatten(config))
    report.add_section(SECTION_TITLES[9])
    report.add_kv(None, dict(environment))
    return report.write(path)
