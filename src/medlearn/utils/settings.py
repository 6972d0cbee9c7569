"""Settings dataclasses built from user mappings (config files, CLI), refusing unknown keys by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from medlearn.errors import MedlearnError
from medlearn.utils.yaml_files import read_yaml

T = TypeVar("T")


def settings_from_dict(cls: type[T], values: dict[str, Any], kind: str) -> T:
    """``cls(**values)``, but a misspelt key is an error listing it instead of a TypeError traceback."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise MedlearnError(f"unknown {kind} settings: {', '.join(unknown)}")
    return cls(**values)


def merge_layers(
    defaults: Mapping[str, Mapping[str, Any]], config_file: Path | None, overrides: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Per-section settings: ``defaults``, then the YAML ``config_file``, then ``overrides`` (CLI flags); later
    layers win, and a ``None`` value (a flag not given) never overrides anything."""

    layers = [defaults, read_yaml(config_file) if config_file is not None else {}, overrides or {}]
    merged: dict[str, dict[str, Any]] = {section: {} for section in defaults}
    for layer in layers:
        for section in merged:
            merged[section].update({k: v for k, v in (layer.get(section) or {}).items() if v is not None})
    return merged
