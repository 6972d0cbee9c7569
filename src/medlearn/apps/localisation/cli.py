"""``medlearn localise train|evaluate|predict|models``: named landmarks from the CLI.

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.apps.common.cli_options import Epochs, MaxMinutes, Precision, Quiet, Resume, parse_overrides
from medlearn.errors import MedlearnError

localise = typer.Typer(
    help="Localisation: named anatomical landmarks in 3D volumes (and 2D images).", no_args_is_help=True
)


@localise.command("train")
def train_command(
    data: Annotated[
        str | None,
        typer.Option(
            help="CSV image,annotation[,group]: landmark files (.fcsv, .mrk.json, CSV with name), or label masks or "
            "boxes CSVs (label,x0,y0,z0,x1,y1,z1) for boxes."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to create.")] = None,
    model: Annotated[str | None, typer.Option(help="Localisation model (see 'medlearn localise models').")] = None,
    val_data: Annotated[
        str | None, typer.Option("--val", help="Validation images (default: a held-out share).")
    ] = None,
    max_minutes: MaxMinutes = None,
    epochs: Epochs = None,
    batches_per_epoch: Annotated[int | None, typer.Option(help="Patch batches per epoch.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of AdamW.")] = None,
    sigma_mm: Annotated[float | None, typer.Option(help="Width of the target heat maps (default: 2 voxels).")] = None,
    modality: Annotated[str | None, typer.Option(help="Modality if the files do not record it (CT, MR, ...).")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a plan value, e.g. --set patch_size=[64,64,64].")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split, initialisation and patch sampling.")] = None,
    precision: Precision = None,
    config: Annotated[Path | None, typer.Option(help="YAML with 'localisation:' and 'training:' settings.")] = None,
    resume: Resume = None,
    quiet: Quiet = False,
) -> None:
    """Landmarks (files of named points): heat maps on patches beside template matching. Boxes (label masks or
    boxes CSVs): slice classifiers along the three axes beside a threshold box. Then the validation report."""
    from medlearn.apps.common.plan_display import print_plan
    from medlearn.apps.localisation.kinds import resume_localiser, train_localiser
    from medlearn.apps.localisation.request import LocalisationTrainRequest

    if resume is not None:
        outcome = resume_localiser(resume, quiet=quiet)
    else:
        if data is None or out is None:
            raise MedlearnError("localise train needs --data and --out (or --resume RUN_DIR)")
        request_overrides = {
            "localisation": {
                "model": model,
                "modality": modality,
                "batches_per_epoch": batches_per_epoch,
                "sigma_mm": sigma_mm,
                "plan_overrides": parse_overrides(overrides or []) or None,
            },
            "training": {"max_minutes": max_minutes, "epochs": epochs, "lr": lr, "seed": seed, "precision": precision},
        }
        request = LocalisationTrainRequest.build(
            data=data, out=out, val_data=val_data, config_file=config, overrides=request_overrides
        )
        outcome = train_localiser(
            request, quiet=quiet, show_plan=lambda plan, fp: print_plan(plan, fp, "Localisation plan")
        )
    if outcome.metrics:
        _echo_summary(outcome.metrics, "validation")
    typer.echo(f"run: {outcome.run_dir}")
    if outcome.report is not None:
        typer.echo(f"report: {outcome.report}")


@localise.command("evaluate")
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'localise train'.")],
    data: Annotated[str, typer.Option(help="CSV image,annotation with landmark files.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics here as JSON.")] = None,
    report: Annotated[Path | None, typer.Option(help="HTML report (default: RUN_DIR/evaluation-<data>.html).")] = None,
) -> None:
    """Landmarks: radial error (mm), share within 2 and 4 mm, per landmark, beside template matching. Boxes: IoU,
    centroid and wall distances (mm) per structure, beside the threshold box. JSON and HTML report."""
    from medlearn.apps.localisation.kinds import evaluate_localisation

    summary, report_path = evaluate_localisation(run_dir, data, json_path=json_out, report_path=report)
    _echo_summary(summary, str(data))
    typer.echo(f"report: {report_path}")


@localise.command("predict")
def predict_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'localise train'.")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files, DICOM series folders or folders of images.")],
    out: Annotated[Path, typer.Option(help="Folder for the landmark files.")] = Path("landmarks"),
    strict: Annotated[bool, typer.Option(help="Fail on the first unreadable input instead of skipping it.")] = False,
) -> None:
    """Landmarks: a 3D Slicer .fcsv (volumes) and a CSV (world mm, indices, score) per input. Boxes: a boxes CSV
    (label, world mm corners, voxel extents) per input."""
    from medlearn.apps.localisation.kinds import predict_localisation

    outcome = predict_localisation(run_dir, inputs, out, strict=strict)
    for path, reason in outcome.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    typer.echo(f"{len(outcome.rows)} image(s) localised; files in {out} (list: {outcome.table})")


@localise.command("models")
def models_command() -> None:
    """List the registered localisation models."""
    from medlearn.models import list_models

    for entry in list_models("localisation"):
        typer.echo(f"{entry.name:<18} {entry.summary}")


def _echo_summary(summary: dict, where: str) -> None:
    if "iou" in summary:  # a box run
        typer.echo(
            f"{where}: box IoU {_number(summary.get('iou'))}, centroid {_number(summary.get('centroid_mm'))} mm, "
            f"walls {_number(summary.get('wall_mm'))} mm, {summary.get('images', 0)} volumes"
        )
        for name, values in (summary.get("baseline") or {}).items():
            typer.echo(f"baseline {name}: box IoU {_number(values.get('iou'))}")
        _echo_verdict(summary)
        return
    interval = summary.get("mean_error_ci") or [None, None]
    typer.echo(
        f"{where}: mean error {_number(summary.get('mean_error_mm'))} mm ({_number(interval[0])}-"
        f"{_number(interval[1])}), within 2 mm {_number(summary.get('success_2mm'))}, within 4 mm "
        f"{_number(summary.get('success_4mm'))}, {summary.get('images', 0)} images"
    )
    for name, values in (summary.get("baseline") or {}).items():
        typer.echo(f"baseline {name}: mean error {_number(values.get('mean_error_mm'))} mm")
    _echo_verdict(summary)


def _echo_verdict(summary: dict) -> None:
    comparison = summary.get("baseline_comparison")
    if comparison:
        typer.echo(comparison["text"])
    elif summary.get("baseline_note"):
        typer.echo(summary["baseline_note"])


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.add_typer(localise, name="localise")
