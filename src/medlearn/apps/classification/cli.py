"""``medlearn classify train|evaluate|predict|models``.

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.apps.common.cli_options import Epochs, MaxMinutes, Precision, Quiet, Resume, Strict
from medlearn.errors import MedlearnError

classify = typer.Typer(help="Train, evaluate and apply image classifiers.", no_args_is_help=True)


@classify.command("train")
def train(
    data: Annotated[
        str | None, typer.Option(help="Folder of class sub-folders, CSV (path,label[,group]) or 'br35h'.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to create.")] = None,
    model: Annotated[str | None, typer.Option(help="Registered model name (see 'medlearn classify models').")] = None,
    max_minutes: MaxMinutes = None,
    epochs: Epochs = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per optimisation step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of AdamW.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Images are padded square and resized to this side.")] = None,
    modality: Annotated[
        str | None,
        typer.Option(help="Modality for intensity handling (CT, MR, CR, US, SM...); default: from the files."),
    ] = None,
    ct_window: Annotated[
        str | None,
        typer.Option(help="CT window preset (brain, lung, abdomen, bone, ...) or 'center,width' in HU."),
    ] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Fraction of groups held out for validation.")] = None,
    test_fraction: Annotated[
        float | None, typer.Option(help="Fraction of groups held out as a test split (0: none).")
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="Name of the positive class (default: second label in sorted order).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the split, initialisation, shuffling and augmentation.")
    ] = None,
    precision: Precision = None,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model (costs warm-up time).")
    ] = False,
    config: Annotated[Path | None, typer.Option(help="YAML with 'classification:' and 'training:' settings.")] = None,
    resume: Resume = None,
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Train a classifier on a duplicate-aware split and write the run directory with its report."""
    from medlearn.apps.classification.train import ClassificationTrainRequest, resume_classifier, train_classifier

    if resume is not None:
        outcome = resume_classifier(resume, strict=strict, quiet=quiet)
    else:
        if data is None or out is None:
            raise MedlearnError("classify train needs --data and --out (or --resume RUN_DIR)")
        overrides = {
            "classification": {
                "model": model,
                "image_size": image_size,
                "modality": modality,
                "ct_window": ct_window,
                "val_fraction": val_fraction,
                "test_fraction": test_fraction,
                "positive": positive,
            },
            "training": {
                "max_minutes": max_minutes,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "seed": seed,
                "precision": precision,
                "compile": True if compile_model else None,
            },
        }
        request = ClassificationTrainRequest.build(data=data, out=out, config_file=config, overrides=overrides)
        outcome = train_classifier(request, strict=strict, quiet=quiet)
    typer.echo(f"report: {outcome.report}")


@classify.command("evaluate")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'classify train'.")],
    data: Annotated[
        str, typer.Option(help="Labelled test images: CSV (path,label), folder of class folders or 'br35h'.")
    ],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics here as JSON.")] = None,
    positive: Annotated[
        str | None, typer.Option(help="Positive class (default: the run's, else second in sorted order).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="HTML report path (default: RUN_DIR/evaluation-<data>.html).")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first unreadable image.")] = False,
) -> None:
    """Evaluate a trained classifier on labelled images: metrics with 95% CIs, JSON and an HTML report."""
    from medlearn.apps.classification.evaluate import evaluate_run

    result = evaluate_run(run_dir, data, json_path=json_out, positive=positive, report_path=report, strict=strict)

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    for name in ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1"):
        low, high = result.metrics.get(f"{name}_ci") or (None, None)
        typer.echo(f"{name:>18}: {number(result.metrics[name])}  (95% CI {number(low)}-{number(high)})")
    for name, values in (result.metrics.get("baseline") or {}).items():
        typer.echo(
            f"classical baseline ({name}): accuracy {number(values.get('accuracy'))}, balanced_accuracy "
            f"{number(values.get('balanced_accuracy'))}, auc {number(values.get('auc'))}"
        )
    comparison = result.metrics.get("baseline_comparison")
    if comparison:
        typer.echo(comparison["text"])
    if result.metrics.get("baseline_note"):
        typer.echo(result.metrics["baseline_note"])
    overlap = result.metrics.get("overlap_with_training") or {}
    if overlap.get("near_duplicate_of_training") or overlap.get("same_file"):
        typer.echo(
            f"warning: {overlap['near_duplicate_of_training']} of {overlap['images']} evaluated images are "
            "(near-)copies of the run's training/validation images: these figures are optimistic",
            err=True,
        )
    typer.echo(f"report: {result.report}")


@classify.command("predict")
def predict(
    run_dir: Annotated[
        Path, typer.Argument(help="A run directory made by 'classify train', or a model.onnx from 'medlearn export'.")
    ],
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders (any supported format).")],
    out: Annotated[Path, typer.Option(help="CSV of class probabilities to write.")] = Path("predictions.csv"),
    strict: Strict = False,
) -> None:
    """Write calibrated class probabilities for every readable image; list the skipped ones."""
    from medlearn.apps.classification.predict import predict_files

    result = predict_files(run_dir, inputs, out, strict=strict)
    for path, reason in result.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    typer.echo(f"{result.count} predictions written to {out}")


@classify.command("models")
def models() -> None:
    """List the registered classification models."""
    from medlearn.models import list_models

    for entry in list_models("classification"):
        typer.echo(f"{entry.name:<16} {entry.summary}")


def register(app: typer.Typer) -> None:
    app.add_typer(classify, name="classify")
