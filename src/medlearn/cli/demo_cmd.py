"""``medlearn demo``: the README's main job — a brain-tumour classifier on Br35H, evaluated and reported.

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    out: Annotated[Path, typer.Option(help="Run directory (a fresh timestamped one by default).")] = None,
    model: Annotated[str | None, typer.Option(help="Classification model (default: the benchmark's best).")] = None,
    max_minutes: Annotated[float, typer.Option(help="Training time budget in minutes.")] = 9.0,
    epochs: Annotated[
        int | None, typer.Option(help="At most this many epochs (30: the benchmark's; the budget may allow fewer).")
    ] = 30,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train on Br35H brain MRI (tumour yes/no) with a duplicate-aware 70/15/15 split, test, write the report."""
    import time

    from medlearn.apps.classification.train import ClassificationTrainRequest, train_classifier

    out = out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    typer.echo(f"medlearn demo: Br35H brain-MRI tumour classification -> {out}")
    overrides = {
        "classification": {"model": model, "modality": "MR", "test_fraction": 0.15, "val_fraction": 0.15},
        "training": {"max_minutes": max_minutes, "epochs": epochs},
    }
    request = ClassificationTrainRequest.build(data="br35h", out=out, overrides=overrides)
    outcome = train_classifier(request, quiet=quiet)
    m = outcome.metrics
    typer.echo(
        f"test accuracy {m['accuracy']:.4f}  AUC {m['auc']:.4f}  sensitivity {m['sensitivity']:.4f}  "
        f"specificity {m['specificity']:.4f}  (n={int(m['n'])})"
    )
    typer.echo(f"report: {outcome.report.resolve()}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
