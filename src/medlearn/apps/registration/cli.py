"""``medlearn register pair|methods``: classical registration of two images from the CLI (learned registration
follows).

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading SimpleITK or matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

register_app = typer.Typer(
    help="Registration: align a moving image to a fixed one (classical methods; learned models to come).",
    no_args_is_help=True,
)


@register_app.command("pair")
def pair_command(
    fixed: Annotated[Path, typer.Option(help="The fixed image (the grid the result lives on).")],
    moving: Annotated[Path, typer.Option(help="The moving image, aligned to the fixed one.")],
    out: Annotated[Path, typer.Option(help="Folder for warped.*, displacement.nii.gz, transform.h5, metrics.json.")],
    method: Annotated[str, typer.Option(help="Classical method (see 'medlearn register methods').")] = "affine",
    metric: Annotated[
        str, typer.Option(help="mattes (mutual information, any contrasts), correlation or meansquares.")
    ] = "mattes",
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
    """Register MOVING to FIXED with a classical method and write everything a viewer or another tool needs."""
    from medlearn.apps.registration.classical import ClassicalSettings
    from medlearn.apps.registration.pair import PairRequest, register_pair

    settings = ClassicalSettings(method=method, metric=metric, iterations=iterations, seed=seed)
    request = PairRequest(fixed, moving, out, settings, points, labels, fixed_labels, fixed_mask)
    metrics = register_pair(request)
    before, after = metrics["identity"], metrics["registered"]
    typer.echo(
        f"{method} ({metric}) in {metrics['seconds']:.1f} s: NCC {before['ncc']:.3f} -> {after['ncc']:.3f}, "
        f"NMI {before['nmi']:.3f} -> {after['nmi']:.3f}; folding {metrics['folding_fraction']:.2%}, "
        f"SD log-Jacobian {metrics['sdlogj']:.3f}"
    )
    if "dice" in metrics:
        typer.echo(f"label Dice {metrics['dice_identity']['mean']:.3f} -> {metrics['dice']['mean']:.3f}")
    typer.echo(f"outputs in {out}")


@register_app.command("evaluate")
def evaluate_command(
    data: Annotated[
        Path,
        typer.Option(
            help="CSV fixed,moving[,fixed_labels,moving_labels][,fixed_points,moving_points] (paths relative to it)."
        ),
    ],
    method: Annotated[str, typer.Option(help="Classical method (see 'medlearn register methods').")] = "affine",
    metric: Annotated[str, typer.Option(help="mattes, correlation or meansquares.")] = "mattes",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the summary here.")] = None,
    iterations: Annotated[int, typer.Option(help="Optimiser iterations per resolution level.")] = 200,
) -> None:
    """Register every pair with a classical method; Dice and HD95 of warped labels, landmark error, folding, SD of
    log-Jacobian and seconds per pair, beside the identity."""
    from medlearn.apps.registration.classical import ClassicalSettings
    from medlearn.apps.registration.evaluate import evaluate_pairs, read_pairs, write_summary

    settings = ClassicalSettings(method=method, metric=metric, iterations=iterations)
    summary = evaluate_pairs(read_pairs(data), settings)
    identity = summary["baseline"]["identity"]
    parts = [f"{summary['pairs']} pairs, {method}: {summary['seconds_per_pair']:.1f} s per pair"]
    for key, unit in (("dice", ""), ("hd95_mm", " mm"), ("tre_mm", " mm")):
        if summary.get(key) is not None:
            parts.append(f"{key.removesuffix('_mm')} {summary[key]:.3f}{unit} (identity {identity[key]:.3f}{unit})")
    parts.append(f"folding {summary['folding_fraction']:.2%}, SD log-Jacobian {summary['sdlogj']:.3f}")
    typer.echo("; ".join(parts))
    if json_out is not None:
        write_summary(summary, json_out)
        typer.echo(f"written {json_out}")


@register_app.command("methods")
def methods_command() -> None:
    """List the classical registration methods."""
    from medlearn.apps.registration.classical import METHODS

    for name, summary in METHODS.items():
        typer.echo(f"{name:<10} {summary}")


def register(app: typer.Typer) -> None:
    app.add_typer(register_app, name="register")
