"""``medlearn generate train|sample|evaluate|study|models``: image synthesis with GANs, measured offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.cli.options import Epochs, MaxMinutes, Precision, Quiet, Resume, Strict
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
    from medlearn.cli.options import parse_overrides
    from medlearn.workflows.generation_run import GenerationTrainRequest, resume_generator, train_generator

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
    from medlearn.workflows.generator import TrainedGenerator, write_samples

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
    from medlearn.workflows.generation_evaluate import evaluate_run

    metrics, report_path = evaluate_run(
        run_dir, data, json_path=json_out, features=str(features) if features else None, seed=seed, report_path=report
    )
    for name in ("fid", "kid", "precision", "recall", "ms_ssim", "ms_ssim_real"):
        value = metrics.get(name)
        typer.echo(f"{name:>13}: {'n/a' if value is None else f'{value:.4f}'}")
    typer.echo(f"     features: {metrics['feature_network']}")
    typer.echo(f"report: {report_path}")


@generate.command("study")
def study_command(
    out: Annotated[Path, typer.Option(help="Study folder (an interrupted study resumes here).")],
    data: Annotated[str, typer.Option(help="Labelled images: 'br35h', a CSV (path,label) or class folders.")] = "br35h",
    fractions: Annotated[str, typer.Option(help="Shares of the training labels to use.")] = "0.05,0.1,0.25,1",
    seeds: Annotated[int, typer.Option(help="Repetitions (different labelled subsets and initialisations).")] = 3,
    arms: Annotated[str, typer.Option(help="classic, gan and/or pretrain-ae.")] = "classic,gan,pretrain-ae",
    gan_model: Annotated[str, typer.Option(help="The conditional GAN of the gan arm.")] = "wgan-gp",
    gan_minutes: Annotated[float, typer.Option(help="Training budget of each GAN (one per seed and fraction).")] = 3.0,
    model: Annotated[str | None, typer.Option(help="The classifier (default: the project's best).")] = None,
    image_size: Annotated[int, typer.Option(help="Image side for classifier and GAN.")] = 64,
    epochs: Annotated[int | None, typer.Option(help="Epochs over the real labelled subset per run.")] = None,
    min_steps: Annotated[int | None, typer.Option(help="Floor of the optimisation steps of every run.")] = None,
    modality: Annotated[str, typer.Option(help="Modality of the images (Br35H: MR).")] = "MR",
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Frid-Adar et al.'s study: classic augmentation vs + conditional-GAN images vs autoencoder pre-training at
    scarce label shares, several seeds, 95% intervals; writes study.json, runs.csv and report.html."""
    from medlearn.workflows.augmentation_study import StudySettings, run_study
    from medlearn.workflows.generation_synthesizer import conditional_gan_synthesizer

    chosen = tuple(a.strip() for a in arms.split(",") if a.strip())
    try:
        shares = tuple(float(f) for f in fractions.split(",") if f.strip())
    except ValueError:
        raise MedlearnError(f"--fractions must be numbers separated by commas, got {fractions!r}") from None
    values = {"epochs": epochs, "min_steps": min_steps, "model": model}
    settings = StudySettings(
        data=data,
        fractions=shares,
        seeds=seeds,
        arms=chosen,
        image_size=image_size,
        modality=modality,
        **{k: v for k, v in values.items() if v is not None},
    )
    synthesizer = conditional_gan_synthesizer(model=gan_model, minutes=gan_minutes) if "gan" in chosen else None
    result = run_study(settings, out, synthesizer, quiet=quiet)
    typer.echo(
        f"target (gan +{settings.target_points:g} points at {settings.target_fraction:.0%} labels): "
        f"{result.target.get('statement', result.target.get('status'))}"
    )
    typer.echo(f"report: {result.report}")


@generate.command("models")
def models_command() -> None:
    """List the registered generative models."""
    from medlearn.models import list_models

    for entry in list_models("generation"):
        typer.echo(f"{entry.name:<10} {entry.summary}")


def register(app: typer.Typer) -> None:
    app.add_typer(generate, name="generate")
