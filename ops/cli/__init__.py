"""The ``fleet`` command line: a thin click layer over the Python API.

Each command module in this package adds its commands through
``register(cli)``, so command groups live in their own files (``log.py``,
``quarantine.py``, ...). A module is imported only when one of its commands
runs: :data:`COMMANDS` names each command's module and the short help that
``fleet --help`` shows, so start-up stays cheap (nats, aiohttp, dramatiq and
the telemetry exporters load only for the commands that use them). Exit codes
are in :mod:`.exits`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from events.errors import ConfigError, FleetError, TransientError

from .exits import EXIT_PROBLEM, EXIT_UNAVAILABLE, EXIT_USAGE

__all__ = ["COMMANDS", "cli", "main"]

#: command -> (module of this package whose ``register(cli)`` adds it, short help for
#: ``fleet --help``). A new command is one row here; tests/unit/test_cli_lazy.py checks that
#: every registered command has its row and that the short help matches the command's own.
COMMANDS: dict[str, tuple[str, str]] = {
    "api": ("api", "Serve health, readiness, metrics, webhooks and queries over HTTP until SIGTERM."),
    "changes": ("changes", "Graph-change events for downstream services (the GRAPH stream)."),
    "demo": ("demo", "Start an embedded nats-server, the ingest worker and a simulated workload."),
    "dev": ("up", ("Run the fleet like `fleet up` and restart its processes when the code changes"
                   " (watchfiles).")),
    "export": ("export", ("Export every node and edge of the active version as JSON lines, from one"
                          " snapshot.")),
    "health": ("health", ("Report the fleet's health and exit non-zero, naming the culprits, when it is"
                          " not healthy.")),
    "import-webhooks": ("import_webhooks", ("Backfill saved webhook payloads (PATH: files or folders)"
                                            " through the webhook mapping.")),
    "ingest": ("ingest", "Consume the SDLC stream into the immutable log until SIGTERM."),
    "log": ("log", "Inspect the immutable event log (DATA_DIR/log.db)."),
    "mcp": ("mcp", ("Serve the graph to an AI agent over MCP on stdin/stdout (the agent starts this"
                    " command).")),
    "nats": ("nats", "Run the embedded nats-server with JetStream on DATA_DIR/nats."),
    "project": ("projections", "Run the projector: apply new log entries to the graph until SIGTERM."),
    "projections": ("projections", ("List projection versions: state, position, lag, counts, digest,"
                                    " poison.")),
    "publish": ("publish", ("Publish canonical events, one JSON object per line, from FILE (or - for"
                            " stdin).")),
    "quarantine": ("quarantine", "Bad input kept with its raw bytes and reason: list, show, retry."),
    "query": ("query", "Query the active version of the graph projection."),
    "replica": ("replica", ("Keep this host's log a copy of the primary's, from the LOG stream, and"
                            " project it.")),
    "replay": ("projections", ("Build the code's version of PROJECTION from log position 0, then"
                               " promote it.")),
    "restart": ("up", ("Restart processes of the running `fleet up` (on the same data dir); wait until"
                       " they are back.")),
    "rollback": ("projections", ("Re-activate the version the active one replaced (kept until"
                                 " dropped).")),
    "schema": ("schema", "Print the JSON Schema of a contract, for producers and consumers."),
    "simulate": ("publish", ("Publish a deterministic, realistic SDLC workload (same seed, same"
                             " events).")),
    "up": ("up", "Run the Procfile's processes (nats, ingest, worker, api) and keep them running."),
    "verify": ("log", "Prove the log intact: hash chain, dense positions, every id indexed."),
    "worker": ("worker", "Run the dramatiq actors that keep the graph current, until SIGTERM."),
}


class LazyGroup(click.Group):
    """A group whose subcommands come from :data:`COMMANDS`, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in COMMANDS:
            command = load_command(cmd_name)
            self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their short help, from the table: listing imports nothing."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is not None:
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                placeholder = click.Command(name, help=COMMANDS[name][1])
                rows.append((name, placeholder.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def load_command(name: str) -> click.Command:
    """Import the module of command ``name`` (a key of :data:`COMMANDS`) and return the command."""
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    registry = click.Group()
    module.register(registry)
    command = registry.commands.get(name)
    if command is None:  # a wrong row in COMMANDS: a bug, said plainly
        raise RuntimeError(f"ops/cli/{COMMANDS[name][0]}.py registers no command {name!r}"
                           f" (it registers {sorted(registry.commands)}); fix COMMANDS")
    return command


def _startup_stopped() -> type[BaseException]:
    # Evaluated only when an exception reaches main's handler: ops.startup (nats) is imported by
    # the commands that can raise StartupStopped, and by nothing else.
    startup = sys.modules.get("ops.startup")
    return startup.StartupStopped if startup is not None else _NeverRaised


class _NeverRaised(Exception):
    """Stands in for StartupStopped when ops.startup was never imported."""


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", type=click.Path(path_type=Path),
              help="Data directory [FLEET_DATA_DIR, default ./data].")
@click.option("--nats-url", help="NATS server URL [FLEET_NATS_URL, default the embedded server].")
@click.version_option(package_name="graphfleet")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, nats_url: str | None) -> None:
    """graphfleet: an event-sourced fleet that builds a knowledge graph of software development.

    \b
    Example:
      fleet nats &                      # embedded nats-server on ./data/nats
      fleet simulate --events 10000     # publish a realistic workload
      fleet ingest --until-idle 2       # append it to the immutable log
      fleet log stats
    """
    from ..settings import load_settings

    try:
        overrides = {"data_dir": data_dir}
        if nats_url:
            overrides.update(nats_url=nats_url, embedded_nats=False)
        settings = load_settings(**overrides)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    ctx.obj = settings


def main() -> None:
    """Entry point of the ``fleet`` script: maps fleet errors to exit codes."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except _startup_stopped() as e:
        click.echo(str(e), err=True)  # SIGTERM while starting: a clean stop
        sys.exit(0)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code)
    except ConfigError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    except TransientError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    except FleetError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_PROBLEM)
