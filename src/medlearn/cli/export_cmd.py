"""``medlearn export RUN``: a trained run as an ONNX file (or a torch.export program), checked against the run's
own network and self-describing (see :mod:`medlearn.inference.export`). Each task that can be exported has
``medlearn.apps.<task>.export.export_spec``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from medlearn.errors import MedlearnError


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)


def export_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by '<task> train'.")],
    out: Annotated[Path | None, typer.Option(help="File to write (default: RUN/model.onnx or RUN/model.pt2).")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="onnx (ONNX Runtime and others) or pt2 (torch.export).")
    ] = "onnx",
    check_data: Annotated[
        str | None, typer.Option(help="Images (CSV or folder) the check also runs, beside random inputs.")
    ] = None,
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default: the exporter's).")] = None,
) -> None:
    """Export the run's best network, check the file against it (max |difference| on random and, with
    --check-data, real inputs) and report its speed beside the eager network; a failed check writes nothing."""
    from medlearn.inference.export import FORMATS, export
    from medlearn.utils.yaml_files import read_yaml

    if fmt not in FORMATS:
        raise MedlearnError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    task = read_yaml(Path(run_dir) / "config.yaml").get("task") if (Path(run_dir) / "config.yaml").is_file() else None
    if task is None:
        raise MedlearnError("not a medlearn run folder (no config.yaml with a task)", run_dir)
    try:
        module = importlib.import_module(f"medlearn.apps.{task}.export")
    except ModuleNotFoundError:
        raise MedlearnError(f"export of {task} runs is not supported yet", run_dir) from None
    spec = module.export_spec(Path(run_dir), check_data)
    out = out or Path(run_dir) / f"model.{fmt}"
    check = export(spec, out, fmt, opset=opset)
    typer.echo(
        f"exported {task} run to {out} ({fmt}); max |exported - trained| {check.max_abs_difference:.2g} "
        f"(tolerance {check.tolerance:.2g}); {check.exported_ms:.2f} ms per image exported vs "
        f"{check.eager_ms:.2f} eager"
    )
