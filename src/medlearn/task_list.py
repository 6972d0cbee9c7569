"""The tasks medlearn knows, in one list.

Each task has a package ``medlearn.apps.<name>`` (settings, Task, training, evaluation, prediction, loaded
model, report and the CLI group ``medlearn <command>``) and registers its models under its name
(``@register_model(..., task=<name>)``). The CLI builds its command groups from this list and the model
registry refuses a task that is not in it, so adding a task is one new package plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    """A task: its name (package ``medlearn.apps.<name>``, registry task) and its CLI group."""

    name: str
    command: str


TASKS: tuple[TaskInfo, ...] = (
    TaskInfo("classification", "classify"),
    TaskInfo("segmentation", "segment"),
    TaskInfo("generation", "generate"),
    TaskInfo("enhancement", "enhance"),
    TaskInfo("detection", "detect"),
    TaskInfo("localisation", "localise"),
    TaskInfo("registration", "register"),
    TaskInfo("retrieval", "retrieve"),
)


def task_names() -> tuple[str, ...]:
    return tuple(task.name for task in TASKS)
