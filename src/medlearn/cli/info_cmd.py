"""``medlearn info PATH``: what an image file holds (shape, spacing, orientation, values, safe tags).

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return " x ".join(_cell(v) for v in value) if value and not isinstance(value[0], str) else ", ".join(value)
    return str(value)


def _table(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=Path(summary["source"]).name, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in summary.items():
        if key not in ("dicom", "source"):
            table.add_row(key, _cell(value))
    for key, value in summary.get("dicom", {}).items():
        table.add_row(f"dicom.{key}", _cell(value))
    return table


def info(
    path: Path = typer.Argument(..., help="Image file (DICOM, NIfTI, NRRD, PNG/JPG/BMP/TIFF) or DICOM folder."),
    series: str | None = typer.Option(None, "--series", help="SeriesInstanceUID to read from a DICOM folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
) -> None:
    """Describe an image: shape, spacing, orientation, value range and non-identifying tags."""
    from medlearn.io import describe, load

    summary = describe(load(path, series_uid=series))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console

    Console(width=120).print(_table(summary))


def register(app: typer.Typer) -> None:
    """Add the ``info`` command to ``app``."""
    app.command("info")(info)
