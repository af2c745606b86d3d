"""The `fleet` CLI starts cheaply: its command table is complete and imports nothing heavy."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from importlib import import_module

import click
import pytest
from click.testing import CliRunner

import ops.cli
from ops.cli import COMMANDS, cli, load_command
from tests.support.projection import simulated_log

#: what only some commands need: never loaded by `import ops.cli`, `fleet --help` or a query
HEAVY = ("nats", "aiohttp", "dramatiq", "opentelemetry.sdk", "opentelemetry.exporter", "sqlite_utils",
         "honcho", "watchfiles")

_LOADED = """
import json, sys
{setup}
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] in {roots!r} or m in {heavy!r})))
"""


def _command_modules() -> list[str]:
    """Every module of ops/cli that registers commands."""
    names = [m.name for m in pkgutil.iter_modules(ops.cli.__path__)]
    return [n for n in names if hasattr(import_module(f"ops.cli.{n}"), "register")]


def _registered(module: str) -> dict[str, click.Command]:
    group = click.Group()
    import_module(f"ops.cli.{module}").register(group)
    return group.commands


def _walk(command: click.Command, path: list[str]):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, [*path, name])


def _loaded_after(setup: str, env: dict | None = None) -> list[str]:
    """Heavy modules present after running ``setup`` in a fresh interpreter."""
    roots = sorted({h.partition(".")[0] for h in HEAVY})
    code = _LOADED.format(setup=setup, roots=roots, heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    return [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("module", _command_modules())
def test_every_registered_command_has_its_row_in_the_table(module):
    """A command a module registers is in COMMANDS under that module, so `fleet` can reach it."""
    registered = _registered(module)
    assert registered, module
    for name in registered:
        assert COMMANDS.get(name, (None,))[0] == module, (
            f"ops/cli/{module}.py registers {name!r}: add a row to ops.cli.COMMANDS")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_row_loads_its_command_with_the_same_short_help(name):
    """Each row names a command its module registers, and the short help `fleet --help` shows
    from the table is the command's own."""
    command = load_command(name)
    assert command.name == name
    assert COMMANDS[name][1] == command.get_short_help_str(limit=1000)


def test_help_lists_every_command_as_click_would():
    """`fleet --help` lists every command, with the truncated short help an eager group prints."""
    result = CliRunner().invoke(cli, ["--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    eager = click.Group("fleet", commands={name: load_command(name) for name in COMMANDS})
    formatter = click.HelpFormatter(width=80, max_width=100)
    eager.format_commands(click.Context(eager, terminal_width=80, max_content_width=100), formatter)
    assert formatter.getvalue() in result.output
    listed = result.output.split("Commands:")[1]
    assert all(f"\n  {name} " in listed for name in COMMANDS)


def test_every_command_and_subcommand_answers_help():
    """`--help` works for every command reachable from the table; leaf commands show an example."""
    runner = CliRunner()
    for name in COMMANDS:
        for path, command in _walk(load_command(name), [name]):
            result = runner.invoke(cli, [*path, "--help"])
            assert result.exit_code == 0, (path, result.output)
            if isinstance(command, click.Group):
                assert all(sub in result.output for sub in command.commands), path
            else:
                assert "Example" in result.output, path


def test_importing_the_cli_loads_no_heavy_module():
    """`import ops.cli` loads neither nats, aiohttp, dramatiq, telemetry exporters nor
    sqlite-utils: each command imports what it needs when it runs."""
    assert _loaded_after("import ops.cli") == []


def test_help_loads_no_heavy_module():
    """`fleet --help` prints the whole command list without importing any command module."""
    setup = ("from ops.cli import main\nsys.argv = ['fleet', '--help']\ntry:\n    main()\n"
             "except SystemExit:\n    pass\nassert not any(m.startswith('ops.cli.') and m != 'ops.cli.exits'"
             " for m in sys.modules), sorted(sys.modules)")
    assert _loaded_after(setup) == []


def test_a_query_loads_no_nats_client(tmp_path):
    """`fleet query node` against a built graph answers without the NATS client or the HTTP stack."""
    from projections.versions.rebuild import rebuild

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    simulated_log(data_dir / "log.db", 300)
    rebuild(data_dir / "log.db", data_dir / "projections")
    setup = ("from ops.cli import main\nsys.argv = ['fleet', 'query', 'node', 'project:simulate:1',"
             " '--json']\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code")
    assert _loaded_after(setup, env={**os.environ, "FLEET_DATA_DIR": str(data_dir)}) == []


def _raising(monkeypatch, error: BaseException) -> None:
    def boom() -> None:
        raise error

    monkeypatch.setitem(cli.commands, "boom", click.Command("boom", callback=boom))


def test_a_stop_while_starting_still_exits_0(monkeypatch, capsys):
    """StartupStopped (SIGTERM during start-up) is a clean stop: exit 0, its message on stderr,
    though main() no longer imports ops.startup itself."""
    from ops.startup import StartupStopped
    from tests.support.cli import fleet

    _raising(monkeypatch, StartupStopped("stopped while waiting for NATS"))
    code, _, err = fleet(monkeypatch, capsys, "boom")
    assert code == 0 and "stopped while waiting for NATS" in err


def test_errors_map_to_exit_codes_without_ops_startup_loaded():
    """In a process that never imported ops.startup, a fleet error still gets its exit code."""
    code = ("import sys, click\nfrom events.errors import TransientError\nfrom ops.cli import cli, main\n"
            "def boom():\n    raise TransientError('nats is down')\n"
            "cli.commands['boom'] = click.Command('boom', callback=boom)\nsys.argv = ['fleet', 'boom']\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, 'ops.startup' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.stdout.split() == ["3", "False"], result.stderr[-2000:]
    assert "error: nats is down" in result.stderr
