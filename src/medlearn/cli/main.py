"""Entry point of the ``medlearn`` command: assembles the command groups and turns user errors into
one line on stderr with exit status 2 (never a traceback)."""

from __future__ import annotations

import functools
import sys

import typer

from medlearn.errors import MedlearnError

app = typer.Typer(
    name="medlearn",
    help="Deep learning for medical image analysis: read, train, evaluate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@functools.cache
def _register_commands() -> None:
    """The general commands, one group per task of :data:`medlearn.task_list.TASKS` (``medlearn.apps.<name>.cli``),
    then the studies (which add commands to the task groups). Once per process: registering again on every
    ``main()`` call piled up duplicate commands, and Typer rebuilds the whole command tree on each call, so a
    process that called ``main()`` hundreds of times (the test suite) spent most of its time there."""
    import importlib

    from medlearn.apps.studies import cli as studies_cli
    from medlearn.cli import data_cmd, demo_cmd, export_cmd, info_cmd, serve_cmd
    from medlearn.task_list import TASKS

    for module in (info_cmd, data_cmd):
        module.register(app)
    for task in TASKS:
        importlib.import_module(f"medlearn.apps.{task.name}.cli").register(app)
    studies_cli.register(app)
    export_cmd.register(app)
    serve_cmd.register(app)
    demo_cmd.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print ``medlearn: error: ...`` and exit with status 2."""
    _register_commands()
    try:
        status = app(args=argv, standalone_mode=False)
        if isinstance(status, int):  # Typer returns the exit code of an abort (130) or an Exit
            return status
    except MedlearnError as error:
        print(f"medlearn: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medlearn: interrupted", file=sys.stderr)
        return 130
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except Exception as error:  # usage errors of click (or of the click that newer Typer versions vendor)
        show = getattr(error, "show", None)
        if callable(show) and hasattr(error, "exit_code"):
            show()
            return 2
        if type(error).__name__ == "Abort":
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry: exit with :func:`main`'s status."""
    sys.exit(main())
