"""``medlearn generate train|sample|evaluate|models``: image synthesis with GANs, measured offline (``generate study``
comes from :mod:`medlearn.apps.studies.cli`).

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.apps.common.cli_options import Epochs, MaxMinutes, Precision, Quiet, Resume, Strict
from medlearn.errors import MedlearnError

generate = typer.Typer(help="Image synthesis: train GANs, sample synthetic images, measure them.", no_args_is_help=True)


@generate.command("train")
def train_command(
    data: Annotated[
        str | None, typer.Option(help="Images: CSV (path[,label][,group]), a folder (of class folders) or 'br35h'.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to create.")] = None,
    model: Annotated[str | None, typer.Option(help="dcgan or wgan-gp (see 'medlearn generate models').")] = None,
    size: Annotated[int | None, typer.Option(help="Image side in pixels: 32, 64, 128 or 256.")] = None,
    channels: Annotated[int | None, typer.Option(help="1 (grey) or 3 (RGB).")] = None,
    unconditional: Annotated[
        bool, typer.Option("--unconditional", help="Ignore the labels (default: class-conditional when labelled).")
    ] = False,
    max_minutes: MaxMinutes = None,
    epochs: Epochs = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per optimisation step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate of both networks.")] = None,
    modality: Annotated[str | None, typer.Option(help="Modality for intensity scaling (CT, MR, ...).")] = None,
    features: Annotated[
        Path | None, typer.Option(help="A 'classify train' run whose features measure the validation FID.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split, initialisation and noise.")] = None,
    precision: Precision = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Any generation setting, e.g. --set width=64 (JSON value).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with 'generation:' and 'training:' settings.")] = None,
    resume: Resume = None,
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Train a DCGAN or WGAN-GP; sample grids go to RUN_DIR/samples/ every epoch, the report to RUN_DIR."""
    from medlearn.apps.common.cli_options import parse_overrides
    from medlearn.apps.generation.train import GenerationTrainRequest, resume_generator, train_generator

    if resume is not None:
        outcome = resume_generator(resume, strict=strict, quiet=quiet)
    else:
        if data is None or out is None:
            raise MedlearnError("generate train needs --data and --out (or --resume RUN_DIR)")
        generation = {
            **parse_overrides(overrides or []),
            "model": model,
            "image_size": size,
            "channels": channels,
            "modality": modality,
            "features": str(features) if features else None,
            "conditional": False if unconditional else None,
        }
        training = {
            "max_minutes": max_minutes,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "precision": precision,
        }
        request = GenerationTrainRequest.build(
            data=data, out=out, config_file=config, overrides={"generation": generation, "training": training}
        )
        outcome = train_generator(request, strict=strict, quiet=quiet)
    metrics = outcome.summary.get("metrics") or {}
    if metrics:
        typer.echo(f"held-out FID {metrics['fid']:.2f}, KID {metrics['kid']:.4f}, MS-SSIM {metrics['ms_ssim']:.3f}")
    typer.echo(f"samples: {outcome.run_dir / 'samples'}")
    typer.echo(f"report: {outcome.report}")


@generate.command("sample")
def sample_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'generate train'.")],
    out: Annotated[Path, typer.Option(help="Folder for the images and samples.csv.")],
    count: Annotated[int, typer.Option(help="Number of images.")] = 64,
    label: Annotated[
        str | None, typer.Option(help="Class to generate (conditional models; default: all classes in turn).")
    ] = None,
    image_format: Annotated[str, typer.Option("--format", help="png, nii.gz or nii.")] = "png",
    seed: Annotated[int, typer.Option(help="Noise seed (same seed, same images).")] = 0,
) -> None:
    """Write synthetic images (marked synthetic in their metadata) and a samples.csv usable as training data."""
    from medlearn.apps.generation.model import TrainedGenerator, write_samples

    generator = TrainedGenerator.from_run_dir(run_dir)
    labels = generator.balanced_labels(count, label)
    images = generator.sample(count, labels, seed=seed)
    manifest = write_samples(generator, images, labels, out, image_format=image_format)
    typer.echo(f"{count} SYNTHETIC images written to {out} (listed in {manifest.name})")


@generate.command("evaluate")
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'generate train'.")],
    data: Annotated[str, typer.Option(help="Real images to compare with: CSV (path[,label]), folder or 'br35h'.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics here as JSON.")] = None,
    features: Annotated[
        Path | None, typer.Option(help="A 'classify train' run whose penultimate features the distances use.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated set and of the KID subsets.")] = 0,
    report: Annotated[
        Path | None, typer.Option(help="HTML report path (default: RUN_DIR/evaluation-<data>.html).")
    ] = None,
) -> None:
    """FID, KID, precision/recall and MS-SSIM (mode collapse) of generated vs real images, with an HTML report."""
    from medlearn.apps.generation.evaluate import evaluate_run

    metrics, report_path = evaluate_run(
        run_dir, data, json_path=json_out, features=str(features) if features else None, seed=seed, report_path=report
    )
    for name in ("fid", "kid", "precision", "recall", "ms_ssim", "ms_ssim_real"):
        value = metrics.get(name)
        typer.echo(f"{name:>13}: {'n/a' if value is None else f'{value:.4f}'}")
    typer.echo(f"     features: {metrics['feature_network']}")
    for name, values in (metrics.get("baseline") or {}).items():
        typer.echo(f"classical baseline ({name}): FID {values.get('fid')}, KID {values.get('kid')}")
    if metrics.get("baseline_comparison"):
        typer.echo(metrics["baseline_comparison"]["text"])
    typer.echo(f"report: {report_path}")


@generate.command("models")
def models_command() -> None:
    """List the registered generative models."""
    from medlearn.models import list_models

    for entry in list_models("generation"):
        typer.echo(f"{entry.name:<10} {entry.summary}")


def register(app: typer.Typer) -> None:
    app.add_typer(generate, name="generate")
