"""``medlearn enhance train|evaluate|apply|models``: learned denoising and 2x/4x super-resolution.

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.apps.common.cli_options import Epochs, MaxMinutes, Precision, Quiet, Resume
from medlearn.errors import MedlearnError

enhance = typer.Typer(
    help="Image enhancement: train, evaluate and apply denoising and super-resolution models.", no_args_is_help=True
)


def _degradation(task: str | None, noise: str | None, scale: int | None) -> tuple[str, str]:
    """``(task, degradation spec)`` from the flags, refusing contradictory or missing ones."""
    from medlearn.data.degradation import parse_degradation

    task = (task or ("sr" if scale is not None else "denoise")).lower()
    if task not in ("denoise", "sr"):
        raise MedlearnError(f"--task must be denoise or sr, not {task!r}")
    if task == "sr":
        if noise is not None:
            raise MedlearnError("--noise is for --task denoise; super-resolution takes --scale 2 or 4")
        if scale is None:
            raise MedlearnError("--task sr needs --scale 2 or 4")
        return task, parse_degradation(f"downsample:{scale}").text
    if scale is not None:
        raise MedlearnError("--scale is for --task sr; denoising takes --noise (e.g. gaussian:0.05)")
    if noise is None:
        raise MedlearnError(
            "--task denoise needs --noise: gaussian:SIGMA, rician:SIGMA (MR) or poisson:DOSE (low-dose CT)"
        )
    spec = parse_degradation(noise)
    if spec.task != "denoise":
        raise MedlearnError(f"--noise {noise!r} is not a noise; for super-resolution use --task sr --scale N")
    return task, spec.text


@enhance.command("train")
def train_command(
    data: Annotated[str | None, typer.Option(help="CSV with a 'path' column (2D images or volumes).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to create.")] = None,
    task: Annotated[str | None, typer.Option(help="denoise or sr (super-resolution).")] = None,
    noise: Annotated[
        str | None,
        typer.Option(help="Noise to learn to remove: gaussian:SIGMA, rician:SIGMA or poisson:DOSE (unit range)."),
    ] = None,
    scale: Annotated[int | None, typer.Option(help="Super-resolution factor, 2 or 4 (with --task sr).")] = None,
    model: Annotated[str | None, typer.Option(help="Enhancement model (see 'medlearn enhance models').")] = None,
    max_minutes: MaxMinutes = None,
    epochs: Epochs = None,
    batches_per_epoch: Annotated[int | None, typer.Option(help="Patch batches per epoch.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Patches per batch.")] = None,
    patch_size: Annotated[int | None, typer.Option(help="Side of the square training crop (pixels).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of AdamW.")] = None,
    modality: Annotated[
        str | None, typer.Option(help="Modality of every file if they do not record it (CT, MR, ...).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split, initialisation and patch sampling.")] = None,
    precision: Precision = None,
    config: Annotated[Path | None, typer.Option(help="YAML with 'enhancement:' and 'training:' settings.")] = None,
    resume: Resume = None,
    quiet: Quiet = False,
) -> None:
    """Learn to undo a degradation (noise, or downsampling for --task sr) on random crops of the slices."""
    from medlearn.apps.enhancement.train import EnhancementTrainRequest, resume_enhancer, train_enhancer

    if resume is not None:
        outcome = resume_enhancer(resume, max_minutes=max_minutes, quiet=quiet)
    else:
        if data is None or out is None:
            raise MedlearnError(
                "enhance train needs --data (a CSV with a 'path' column) and --out (or --resume RUN_DIR)"
            )
        kind, spec = _degradation(task, noise, scale)
        overrides = {
            "enhancement": {
                "task": kind,
                "degradation": spec,
                "model": model,
                "modality": modality,
                "batches_per_epoch": batches_per_epoch,
                "patch_size": patch_size,
            },
            "training": {
                "max_minutes": max_minutes,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "seed": seed,
                "precision": precision,
            },
        }
        request = EnhancementTrainRequest.build(data=data, out=out, config_file=config, overrides=overrides)
        outcome = train_enhancer(request, quiet=quiet)
    metrics = outcome.metrics
    if metrics:
        typer.echo(
            f"validation PSNR {_number(metrics.get('psnr'))} dB (input {_number(metrics['degraded'].get('psnr'))} dB), "
            f"SSIM {_number(metrics.get('ssim'), 3)}"
        )
    typer.echo(f"run: {outcome.run_dir}")
    if outcome.report is not None:
        typer.echo(f"report: {outcome.report}")


@enhance.command("evaluate")
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'enhance train'.")],
    data: Annotated[str, typer.Option(help="CSV with a 'path' column of clean test images or volumes.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics here as JSON.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="HTML report path (default: RUN_DIR/evaluation-<data>.html).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the test degradation (recorded in the JSON).")] = 0,
    max_slices: Annotated[int, typer.Option(help="Slices evaluated per volume (spread evenly; 0 = all).")] = 8,
    baselines: Annotated[
        bool, typer.Option("--baselines/--no-baselines", help="Also run the classical baselines.")
    ] = True,
) -> None:
    """PSNR/SSIM of the model, of the degraded input and of the classical baselines on degraded test slices."""
    from medlearn.apps.enhancement.evaluate import evaluate_run

    summary, report_path = evaluate_run(
        run_dir,
        data,
        json_path=json_out,
        report_path=report,
        seed=seed,
        max_slices=max_slices or None,
        baselines=baselines,
    )
    rows = [("model", summary), ("input", summary["degraded"]), *summary["baselines"].items()]
    for name, values in rows:
        typer.echo(f"{name:>10}: PSNR {_number(values.get('psnr'))} dB, SSIM {_number(values.get('ssim'), 3)}")
    typer.echo(f"    slices: {summary['n_slices']} of {summary['n_images']} file(s), {summary['noise']}, seed {seed}")
    if summary.get("baseline_comparison"):
        typer.echo(summary["baseline_comparison"]["text"])
    if report_path is not None:
        typer.echo(f"report: {report_path}")


@enhance.command("apply")
def apply_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'enhance train'.")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files, volumes, DICOM series folders or folders.")],
    out: Annotated[Path, typer.Option(help="Folder for the enhanced images.")] = Path("enhanced"),
    strict: Annotated[bool, typer.Option(help="Fail on the first unusable input instead of skipping it.")] = False,
) -> None:
    """Write an enhanced copy of each input in its own format (volumes slice by slice), marked as enhanced."""
    from medlearn.apps.enhancement.apply import apply_enhancer

    outcome = apply_enhancer(run_dir, inputs, out, strict=strict)
    for path, reason in outcome.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    typer.echo(f"{len(outcome.rows)} enhanced image(s) written to {out} (list: {outcome.table})")


@enhance.command("models")
def models_command() -> None:
    """List the registered enhancement models."""
    from medlearn.models import list_models
    from medlearn.models.enhancement import ENHANCEMENT_KINDS

    for entry in list_models("enhancement"):
        typer.echo(f"{entry.name:<12} {ENHANCEMENT_KINDS.get(entry.name, '?'):<8} {entry.summary}")


def _number(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def register(app: typer.Typer) -> None:
    app.add_typer(enhance, name="enhance")
