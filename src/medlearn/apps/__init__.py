"""One package per task: its settings, Task, training, evaluation, prediction, loaded model, report and CLI group,
on the shared layers (io, data, models, engine, planning, inference, evaluation, report). The tasks are listed
in :mod:`medlearn.task_list`; adding one is a new package here plus one line there (see CONTRIBUTING.md)."""
