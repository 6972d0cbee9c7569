"""The ``medlearn`` entry point registers its commands once per process: before, every ``main()`` call added all
command groups again, and Typer rebuilt the ever-growing tree on each call (the test suite's late tests ran 20x
slower)."""

from __future__ import annotations

from medlearn.cli.main import app, main


def test_repeated_calls_do_not_register_the_commands_again(capsys):
    assert main(["register", "methods"]) == 0
    groups, commands = len(app.registered_groups), len(app.registered_commands)
    for _ in range(3):
        assert main(["register", "methods"]) == 0
    assert (len(app.registered_groups), len(app.registered_commands)) == (groups, commands)
    assert "demons" in capsys.readouterr().out
