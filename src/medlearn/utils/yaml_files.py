"""Reading user YAML (config files) with errors that name the file instead of a parser traceback."""

from __future__ import annotations

from pathlib import Path

import yaml

from medlearn.errors import MedlearnError


def read_yaml(path: Path) -> dict:
    """The mapping at the top of a YAML file."""
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise MedlearnError("file not found", path) from error
    except yaml.YAMLError as error:
        raise MedlearnError(f"not valid YAML ({error})", path) from error
    if not isinstance(values, dict):
        raise MedlearnError("expected a mapping at the top of the YAML file", path)
    return values
