"""Options every command group's ``train`` shares, defined once so they read and behave the same everywhere,
and ``--set key=value`` parsing (values are JSON, so lists and numbers keep their type)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from medlearn.errors import MedlearnError

MaxMinutes = Annotated[
    float | None,
    typer.Option(help="Training time budget: the epochs and the learning-rate schedule are sized to fill it."),
]
Epochs = Annotated[int | None, typer.Option(help="Number of epochs; with --max-minutes, at most this many.")]
Precision = Annotated[str | None, typer.Option(help="auto | bf16 | fp32.")]
Resume = Annotated[Path | None, typer.Option(help="Continue the interrupted run in this directory.")]
Strict = Annotated[bool, typer.Option(help="Fail on the first unreadable image instead of skipping it.")]
Quiet = Annotated[bool, typer.Option(help="No progress bar.")]


#: A value that is not JSON but a plain name (``--set normalization=dataset``) is taken as that string.
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def parse_overrides(items: list[str]) -> dict:
    """``["a=1", "b=[2,3]", "c=dataset"]`` -> ``{"a": 1, "b": [2, 3], "c": "dataset"}``; a malformed item is an
    error naming it."""
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise MedlearnError(f"--set {item!r}: expected key=value")
        try:
            parsed[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            if not _BARE_WORD.fullmatch(value.strip()):
                problem = f"--set {item!r}: the value must be JSON or a name (e.g. 4, [128,128], ct)"
                raise MedlearnError(problem) from None
            parsed[key.strip()] = value.strip()
    return parsed
