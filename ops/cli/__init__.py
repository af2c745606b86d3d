"""The ``fleet`` command line: a thin click layer over the Python API.

Each command module in this package adds its commands through
``register(cli)``, so command groups live in their own files (``log.py``,
``quarantine.py``, ...). Exit codes are in :mod:`.exits`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from events.errors import ConfigError, FleetError, TransientError

from ..settings import load_settings
from ..startup import StartupStopped
from . import (
    api,
    changes,
    demo,
    export,
    health,
    import_webhooks,
    ingest,
    log,
    nats,
    projections,
    publish,
    quarantine,
    query,
    schema,
    up,
    worker,
)
from .exits import EXIT_PROBLEM, EXIT_UNAVAILABLE, EXIT_USAGE

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory [FLEET_DATA_DIR, default ./data].")
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
    try:
        overrides = {"data_dir": data_dir}
        if nats_url:
            overrides.update(nats_url=nats_url, embedded_nats=False)
        settings = load_settings(**overrides)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    ctx.obj = settings



for _module in (api, changes, demo, export, health, import_webhooks, ingest, log, nats, projections,
                publish, quarantine, query, schema, up, worker):
    _module.register(cli)


def main() -> None:
    """Entry point of the ``fleet`` script: maps fleet errors to exit codes."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except StartupStopped as e:
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
