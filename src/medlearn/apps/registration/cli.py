"""``medlearn register train|pair|evaluate|methods``: learned and classical registration from the CLI.

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading SimpleITK or matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.apps.common.cli_options import Epochs, MaxMinutes, Quiet, parse_overrides

register_app = typer.Typer(
    help="Registration: align a moving image to a fixed one (a trained model or a classical method).",
    no_args_is_help=True,
)


@register_app.command("pair")
def pair_command(
    fixed: Annotated[Path, typer.Option(help="The fixed image (the grid the result lives on).")],
    moving: Annotated[Path, typer.Option(help="The moving image, aligned to the fixed one.")],
    out: Annotated[Path, typer.Option(help="Folder for warped.*, displacement.nii.gz, transform.h5, metrics.json.")],
    run: Annotated[Path | None, typer.Option(help="A run of 'medlearn register train' (else --method).")] = None,
    method: Annotated[str, typer.Option(help="Classical method (see 'medlearn register methods').")] = "affine",
    metric: Annotated[
        str, typer.Option(help="mattes (mutual information, any contrasts), correlation or meansquares.")
    ] = "mattes",
    refine_steps: Annotated[
        int | None, typer.Option(help="With --run: test-time refinement steps on this pair (default: the run's).")
    ] = None,
    points: Annotated[
        Path | None,
        typer.Option(help="CSV label,x,y[,z]: points of the fixed image (world mm, RAS), mapped into the moving one."),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="A label map of the moving image, warped by nearest neighbour.")
    ] = None,
    fixed_labels: Annotated[
        Path | None, typer.Option(help="The fixed image's label map: Dice of the warped labels against it.")
    ] = None,
    fixed_mask: Annotated[
        Path | None, typer.Option(help="Only voxels inside this mask of the fixed image count.")
    ] = None,
    iterations: Annotated[int, typer.Option(help="Optimiser iterations per resolution level.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the metric's random sampling.")] = 0,
) -> None:
    """Register MOVING to FIXED with a trained model (--run) or a classical method, and write everything a viewer
    or another tool needs."""
    from medlearn.apps.registration.pair import PairRequest, register_pair

    registerer = _registerer(run, method, metric, iterations, seed, refine_steps)
    request = PairRequest(fixed, moving, out, registerer, points, labels, fixed_labels, fixed_mask)
    metrics = register_pair(request)
    before, after = metrics["identity"], metrics["registered"]
    typer.echo(
        f"{metrics['method']} in {metrics['seconds']:.1f} s: NCC {before['ncc']:.3f} -> {after['ncc']:.3f}, "
        f"NMI {before['nmi']:.3f} -> {after['nmi']:.3f}; folding {metrics['folding_fraction']:.2%}, "
        f"SD log-Jacobian {metrics['sdlogj']:.3f}"
    )
    if "dice" in metrics:
        typer.echo(f"label Dice {metrics['dice_identity']['mean']:.3f} -> {metrics['dice']['mean']:.3f}")
    if metrics.get("warning"):
        typer.echo(f"WARNING: {metrics['warning']}", err=True)
    typer.echo(f"outputs in {out}")


@register_app.command("evaluate")
def evaluate_command(
    run: Annotated[Path | None, typer.Argument(help="A run of 'medlearn register train' (else --method).")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="CSV fixed,moving[,fixed_labels,moving_labels][,fixed_points,moving_points] (paths relative to it)."
        ),
    ] = None,
    method: Annotated[
        str, typer.Option(help="Classical method without a run (see 'medlearn register methods').")
    ] = "affine",
    metric: Annotated[str, typer.Option(help="mattes, correlation or meansquares.")] = "mattes",
    baseline: Annotated[
        str, typer.Option(help="With a run: the classical method scored beside it ('none': only the identity).")
    ] = "demons",
    refine_steps: Annotated[int | None, typer.Option(help="With a run: test-time refinement steps per pair.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the summary here.")] = None,
    report: Annotated[Path | None, typer.Option(help="HTML report (default: beside --json, same name).")] = None,
    iterations: Annotated[int, typer.Option(help="Optimiser iterations per resolution level.")] = 200,
) -> None:
    """Register every pair (a trained model, or a classical method); Dice and HD95 of warped labels, landmark error,
    folding, SD of log-Jacobian and seconds per pair, beside the identity and a classical baseline."""
    from medlearn.apps.registration.classical import ClassicalSettings, classical_registerer
    from medlearn.apps.registration.evaluate import evaluate_pairs, read_pairs, write_summary
    from medlearn.apps.registration.report import verdict, write_evaluation_report
    from medlearn.errors import MedlearnError

    if data is None:
        raise MedlearnError("register evaluate needs --data PAIRS.csv")
    registerer = _registerer(run, method, metric, iterations, 0, refine_steps)
    baselines = {}
    if run is not None and baseline != "none":
        baselines[baseline] = classical_registerer(ClassicalSettings(method=baseline, iterations=iterations))
    summary = evaluate_pairs(read_pairs(data), registerer, registerer.name, baselines)
    typer.echo(f"{summary['pairs']} pairs, {registerer.name}: {summary['seconds_per_pair']:.2f} s per pair")
    for label, scores in (("model", summary), *summary["baseline"].items()):
        typer.echo(f"  {label:<10} {_scores_line(scores)}")
    if verdict(summary):
        typer.echo(verdict(summary))
    if json_out is not None:
        write_summary(summary, json_out)
        typer.echo(f"written {json_out}")
    report = report or (json_out.with_suffix(".html") if json_out is not None else None)
    if report is not None:
        write_evaluation_report(summary, report, str(data))
        typer.echo(f"report {report}")


@register_app.command("train")
def train_command(
    data: Annotated[Path, typer.Option(help="CSV path[,labels][,group]: the cohort pairs are drawn from.")],
    out: Annotated[Path, typer.Option(help="Run folder to create.")],
    max_minutes: MaxMinutes = None,
    epochs: Epochs = None,
    similarity: Annotated[str, typer.Option(help="lncc (one contrast), mse, or mi (several contrasts).")] = "lncc",
    contrast: Annotated[
        str, typer.Option(help="same, or random (each image its own contrast: SynthMorph's idea).")
    ] = "same",
    spacing: Annotated[float | None, typer.Option(help="Network grid spacing in mm (default: from the data).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights, pairs and synthetic deformations.")] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Any registration setting, key=value (repeatable).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Train a VoxelMorph-style model (U-Net -> velocity -> scaling and squaring) on pairs of the cohort and
    synthetic deformations of its images, with label Dice when the cohort has label maps."""
    from medlearn.apps.registration.train import RegistrationTrainRequest, train_registration

    task = {"similarity": similarity, "contrast": contrast, **parse_overrides(set_ or [])}
    if spacing is not None:
        task["spacing"] = spacing
    training = {"seed": seed, **({"max_minutes": max_minutes} if max_minutes else {})}
    if epochs is not None:
        training["epochs"] = epochs
    request = RegistrationTrainRequest.build(
        data=str(data), out=out, overrides={"registration": task, "training": training}
    )
    scores = train_registration(request, quiet=quiet)
    best, untrained = scores["best"], scores["untrained"]
    monitor, nan = scores["monitor"], float("nan")
    typer.echo(
        f"validation {monitor}: {untrained.get(monitor, nan):.3f} untrained -> {best.get(monitor, nan):.3f} "
        f"(epoch {scores['best_epoch']} of {scores['epochs']}), folding {best.get('folding', nan):.2%}"
    )
    typer.echo(f"run in {out}")


def _registerer(run: Path | None, method: str, metric: str, iterations: int, seed: int, refine_steps: int | None):
    from medlearn.apps.registration.classical import ClassicalSettings, classical_registerer

    if run is not None:
        from medlearn.apps.registration.learned import LearnedRegistration

        return LearnedRegistration.from_run_dir(run, refine_steps=refine_steps)
    return classical_registerer(ClassicalSettings(method=method, metric=metric, iterations=iterations, seed=seed))


def _scores_line(scores: dict) -> str:
    parts = []
    for key, unit in (("dice", ""), ("hd95_mm", " mm"), ("tre_mm", " mm")):
        if scores.get(key) is not None:
            parts.append(f"{key.removesuffix('_mm')} {scores[key]:.3f}{unit}")
    if scores.get("folding_fraction") is not None:
        parts.append(f"folding {scores['folding_fraction']:.2%}, {scores['seconds_per_pair']:.2f} s per pair")
    return "; ".join(parts)


@register_app.command("methods")
def methods_command() -> None:
    """List the classical registration methods."""
    from medlearn.apps.registration.classical import METHODS

    for name, summary in METHODS.items():
        typer.echo(f"{name:<10} {summary}")


def register(app: typer.Typer) -> None:
    app.add_typer(register_app, name="register")
