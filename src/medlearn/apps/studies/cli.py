"""``medlearn generate study``: the label-scarce augmentation study, added to the generation command group (a study
combines tasks, so it sits above them).

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.apps.generation.cli import generate
from medlearn.errors import MedlearnError


def study_command(
    out: Annotated[Path, typer.Option(help="Study folder (an interrupted study resumes here).")],
    data: Annotated[str, typer.Option(help="Labelled images: 'br35h', a CSV (path,label) or class folders.")] = "br35h",
    fractions: Annotated[str, typer.Option(help="Shares of the training labels to use.")] = "0.05,0.1,0.25,1",
    seeds: Annotated[int, typer.Option(help="Repetitions (different labelled subsets and initialisations).")] = 3,
    arms: Annotated[
        str, typer.Option(help="classic, gan, pretrain-ae and/or non-deep (the classical baseline).")
    ] = "classic,gan,pretrain-ae,non-deep",
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
    from medlearn.apps.generation.synthesizer import conditional_gan_synthesizer
    from medlearn.apps.studies.augmentation import StudySettings, run_study

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


def register(app: typer.Typer) -> None:
    """Add the studies' commands to their task groups (registered before, from :data:`medlearn.task_list.TASKS`)."""
    generate.command("study")(study_command)
