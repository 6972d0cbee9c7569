"""A model registry in the style of timm: ``@register_model`` on a factory, ``create_model(name)``.

Every task's models live in the same registry; ``task`` (one of :data:`medlearn.task_list.TASKS`) says which
task's CLI group may use a model. The built-in models register when :mod:`medlearn.models` is imported, so
use the package (``from medlearn.models import create_model``): this module imports no model, which keeps
the registry free of an import cycle with the models that register in it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from medlearn.errors import MedlearnError
from medlearn.task_list import task_names


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str
    factory: Callable[..., nn.Module]
    summary: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, task: str, summary: str = "") -> Callable[[Callable[..., nn.Module]], Callable]:
    """Register ``factory`` under ``name`` for ``task`` ("classification", "segmentation", ...)."""

    if task not in task_names():
        raise ValueError(f"model {name!r} names task {task!r}, which is not in medlearn.task_list: {task_names()}")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = summary or ((factory.__doc__ or "").strip().splitlines() or [""])[0]
        _REGISTRY[name] = ModelEntry(name=name, task=task, factory=factory, summary=doc)
        return factory

    return decorator


def list_models(task: str | None = None) -> list[ModelEntry]:
    """All registered models, optionally only those of one task, sorted by name."""
    return sorted((e for e in _REGISTRY.values() if task is None or e.task == task), key=lambda e: e.name)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name``; keyword arguments go to its factory."""
    if name not in _REGISTRY:
        known = ", ".join(e.name for e in list_models())
        raise MedlearnError(f"unknown model {name!r}; known models: {known}")
    return _REGISTRY[name].factory(**kwargs)


def model_defaults(name: str, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The keyword defaults of ``name``'s factory (minus ``exclude``): what a run records so that a later
    change of a default cannot change the architecture its saved weights are loaded into."""
    if name not in _REGISTRY:
        raise MedlearnError(f"unknown model {name!r}")
    skipped = set(exclude)
    parameters = inspect.signature(_REGISTRY[name].factory).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.default is not inspect.Parameter.empty and p.name not in skipped and p.kind is p.POSITIONAL_OR_KEYWORD
    }
