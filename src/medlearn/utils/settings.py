"""Settings dataclasses built from user mappings (config files, CLI), refusing unknown keys by name and values of
the wrong type with a one-line error (a YAML ``image_size: big`` must not end in a traceback mid-training)."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from medlearn.errors import MedlearnError
from medlearn.utils.yaml_files import read_yaml

T = TypeVar("T")


def settings_from_dict(cls: type[T], values: dict[str, Any], kind: str) -> T:
    """``cls(**values)``, but a misspelt key or a value of the wrong type is an error naming it instead of a
    TypeError traceback."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise MedlearnError(f"unknown {kind} settings: {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    return cls(**{key: coerce_setting(f"{kind} setting {key}", value, hints[key]) for key, value in values.items()})


def coerce_setting(name: str, value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` wants it, accepting what YAML and JSON produce (ints for floats, ``1e-3`` as a string,
    lists for tuples); a value that cannot be one is a :class:`MedlearnError` naming the setting. Hints this does
    not know (dicts, nested types) pass the value through to the dataclass's own checks."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            return value
        hint = options[0]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        raise MedlearnError(f"{name} must not be empty")
    if origin is Literal:
        if value not in args:
            raise MedlearnError(f"{name} must be one of {', '.join(map(str, args))} (got {value!r})")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise MedlearnError(f"{name} must be true or false (got {value!r})")
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise MedlearnError(f"{name} must be a whole number (got {value!r})")
        return value
    if hint is float:
        if isinstance(value, bool):
            raise MedlearnError(f"{name} must be a number (got {value!r})")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise MedlearnError(f"{name} must be a number (got {value!r})") from None
    if hint is str:
        if not isinstance(value, str):
            raise MedlearnError(f"{name} must be text (got {value!r})")
        return value
    if origin is tuple and isinstance(value, (list, tuple)):
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return tuple(coerce_setting(name, v, item) for v in value) if item is not None else tuple(value)
    if list in (hint, origin) and not isinstance(value, list):
        raise MedlearnError(f"{name} must be a list (got {value!r})")
    if dict in (hint, origin) and not isinstance(value, dict):
        raise MedlearnError(f"{name} must be a mapping (got {value!r})")
    return value


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
