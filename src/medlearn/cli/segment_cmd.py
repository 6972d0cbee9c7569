"""``medlearn segment plan``: the self-configured segmentation plan of a dataset, without training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medlearn.errors import MedlearnError

segment = typer.Typer(help="Segmentation: plan (training and inference follow).", no_args_is_help=True)


@segment.command("plan")
def plan_command(
    data: Annotated[str, typer.Argument(help="CSV with image,mask columns or a folder with images/ and masks/.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the fingerprint and plan as JSON.")] = None,
    modality: Annotated[str | None, typer.Option(help="Modality if the files do not record it (CT, MR, ...).")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a plan value, e.g. --set batch_size=4 (JSON value).")
    ] = None,
) -> None:
    """Fingerprint the dataset (spacings, sizes, foreground intensities, classes) and print the plan."""
    from rich.console import Console
    from rich.table import Table

    from medlearn.data.sources import load_pairs
    from medlearn.planning.fingerprint import fingerprint
    from medlearn.planning.plan import make_plan
    from medlearn.utils.atomic import write_text_atomic

    fp = fingerprint(load_pairs(data), modality=modality)
    plan = make_plan(fp).with_overrides(_parse_overrides(overrides or []))
    table = Table(title=f"Segmentation plan for {data} ({len(fp.cases)} cases, {fp.modality})", show_header=False)
    for key, value in plan.to_dict().items():
        table.add_row(key, json.dumps(value))
    table.add_row("class frequencies", ", ".join(f"{k}: {v:.4f}" for k, v in fp.class_frequencies().items()))
    Console().print(table)
    if json_out is not None:
        write_text_atomic(json_out, json.dumps({"fingerprint": fp.to_dict(), "plan": plan.to_dict()}, indent=2))


def _parse_overrides(items: list[str]) -> dict:
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise MedlearnError(f"--set {item!r}: expected key=value")
        try:
            parsed[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            raise MedlearnError(f'--set {item!r}: the value must be JSON (e.g. 4, [128,128], "ct")') from None
    return parsed


def register(app: typer.Typer) -> None:
    app.add_typer(segment, name="segment")
