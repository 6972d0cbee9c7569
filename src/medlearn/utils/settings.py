"""Settings dataclasses built from user mappings (config files, CLI), refusing unknown keys by name."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from medlearn.errors import MedlearnError

T = TypeVar("T")


def settings_from_dict(cls: type[T], values: dict[str, Any], kind: str) -> T:
    """``cls(**values)``, but a misspelt key is an error listing it instead of a TypeError traceback."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise MedlearnError(f"unknown {kind} settings: {', '.join(unknown)}")
    return cls(**values)
