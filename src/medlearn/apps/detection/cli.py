"""``medlearn detect train|evaluate|predict|models``: small-object detection from the CLI.

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.apps.common.cli_options import Epochs, MaxMinutes, Precision, Quiet, Resume, parse_overrides
from medlearn.errors import MedlearnError

detect = typer.Typer(
    help="Detection: find and score small objects (nuclei, lesions, nodules) in 2D images and 3D volumes.",
    no_args_is_help=True,
)

DataOption = Annotated[
    str | None,
    typer.Option(
        help="CSV image,annotation[,group] (annotation: a mask, a points CSV i,j[,k] or x,y[,z], a Slicer "
        ".fcsv/.mrk.json, a boxes CSV; empty = no objects) or a folder with images/ and masks/."
    ),
]


@detect.command("train")
def train_command(
    data: DataOption = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to create.")] = None,
    model: Annotated[str | None, typer.Option(help="Detection model (see 'medlearn detect models').")] = None,
    val_data: Annotated[
        str | None, typer.Option("--val", help="Validation images (default: hold out a share of the images).")
    ] = None,
    max_minutes: MaxMinutes = None,
    epochs: Epochs = None,
    batches_per_epoch: Annotated[int | None, typer.Option(help="Patch batches per epoch.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of AdamW.")] = None,
    radius_mm: Annotated[
        float | None, typer.Option(help="Radius (mm) of annotated points whose file gives none (default 5).")
    ] = None,
    modality: Annotated[str | None, typer.Option(help="Modality if the files do not record it (CT, MR, ...).")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a plan value, e.g. --set patch_size=[96,96].")
    ] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Flip test-time augmentation.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split, initialisation and patch sampling.")] = None,
    precision: Precision = None,
    config: Annotated[Path | None, typer.Option(help="YAML with 'detection:' and 'training:' settings.")] = None,
    resume: Resume = None,
    quiet: Quiet = False,
) -> None:
    """Fingerprint the annotated images, plan, train on patches, tune the LoG baseline, report on validation."""
    from medlearn.apps.common.plan_display import print_plan
    from medlearn.apps.detection.train import DetectionTrainRequest, resume_detector, train_detector

    if resume is not None:
        outcome = resume_detector(resume, quiet=quiet)
    else:
        if data is None or out is None:
            raise MedlearnError("detect train needs --data and --out (or --resume RUN_DIR)")
        request_overrides = {
            "detection": {
                "model": model,
                "modality": modality,
                "batches_per_epoch": batches_per_epoch,
                "point_radius_mm": radius_mm,
                "plan_overrides": parse_overrides(overrides or []) or None,
                "tta": tta,
            },
            "training": {"max_minutes": max_minutes, "epochs": epochs, "lr": lr, "seed": seed, "precision": precision},
        }
        request = DetectionTrainRequest.build(
            data=data, out=out, val_data=val_data, config_file=config, overrides=request_overrides
        )
        outcome = train_detector(
            request, quiet=quiet, show_plan=lambda plan, fp: print_plan(plan, fp, "Detection plan")
        )
    if outcome.metrics:
        _echo_summary(outcome.metrics, "validation")
    typer.echo(f"run: {outcome.run_dir}")
    if outcome.report is not None:
        typer.echo(f"report: {outcome.report}")


@detect.command("evaluate")
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'detect train'.")],
    data: Annotated[str, typer.Option(help="Annotated images: CSV image,annotation[,group] or images/ + masks/.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics here as JSON.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="HTML report path (default: RUN_DIR/evaluation-<data>.html).")
    ] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Flip test-time augmentation.")] = None,
) -> None:
    """FROC (sensitivity at 1/8-8 false positives per image), CPM, average precision and localisation error,
    beside the tuned LoG blob baseline; JSON and HTML report."""
    from medlearn.apps.detection.evaluate import evaluate_run

    summary, report_path = evaluate_run(run_dir, data, json_path=json_out, report_path=report, tta=tta)
    _echo_summary(summary, str(data))
    typer.echo(f"report: {report_path}")


@detect.command("predict")
def predict_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'detect train'.")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files, DICOM series folders or folders of images.")],
    out: Annotated[Path, typer.Option(help="Folder for the candidate tables and overlays.")] = Path("detections"),
    threshold: Annotated[
        float | None,
        typer.Option(help="Score shown in overlays and counts (default: the run's 1 false positive/image point)."),
    ] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Flip test-time augmentation.")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first unreadable input instead of skipping it.")] = False,
) -> None:
    """Write every candidate per input (world mm, indices, score, radius) as CSV, and an overlay PNG."""
    from medlearn.apps.detection.predict import predict_images

    outcome = predict_images(run_dir, inputs, out, tta=tta, threshold=threshold, strict=strict)
    for path, reason in outcome.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    found = sum(row["found"] for row in outcome.rows)
    typer.echo(
        f"{len(outcome.rows)} image(s): {found} candidate(s) scoring >= {outcome.threshold:.3f}; "
        f"tables and overlays in {out} (list: {outcome.table})"
    )


@detect.command("models")
def models_command() -> None:
    """List the registered detection models."""
    from medlearn.models import list_models

    for entry in list_models("detection"):
        typer.echo(f"{entry.name:<18} {entry.summary}")


def _echo_summary(summary: dict, where: str) -> None:
    interval = summary.get("cpm_ci") or [None, None]
    typer.echo(
        f"{where}: CPM {_number(summary.get('cpm'))} ({_number(interval[0])}-{_number(interval[1])}), "
        f"sensitivity at 1 FP/image {_number(summary.get('sensitivity_at_1fp'))}, "
        f"AP {_number(summary.get('average_precision'))}, {summary.get('targets', 0)} objects in "
        f"{summary.get('images', 0)} images"
    )
    for name, values in (summary.get("baseline") or {}).items():
        typer.echo(f"baseline {name}: CPM {_number(values.get('cpm'))}")
    comparison = summary.get("baseline_comparison")
    if comparison:
        typer.echo(comparison["text"])
    elif summary.get("baseline_note"):
        typer.echo(summary["baseline_note"])


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.add_typer(detect, name="detect")
