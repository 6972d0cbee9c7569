"""The plan of a dense task (segmentation, detection) on the console, as ``plan`` and ``train`` show it."""

from __future__ import annotations

import json


def print_plan(plan, fp, title: str = "Segmentation plan") -> None:
    """The plan as a table, then its normalisation and why (and any caveat), on the console."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{title} ({len(fp.cases)} cases, {fp.modality})", show_header=False)
    for key, value in plan.to_dict().items():
        if key not in ("normalization_reason", "normalization_warning"):
            table.add_row(key, json.dumps(value))
    table.add_row("class frequencies", ", ".join(f"{k}: {v:.4f}" for k, v in fp.class_frequencies().items()))
    console = Console()
    console.print(table)
    console.print(f"normalization {plan.normalization}: {plan.normalization_reason}", markup=False, highlight=False)
    if plan.normalization_warning:
        console.print(f"warning: {plan.normalization_warning}", style="yellow", markup=False, highlight=False)
