"""``fleet nats``: the embedded nats-server (the Procfile's ``nats`` process)."""

from __future__ import annotations

import os

import click

from ..embedded import NatsServer, port_of
from ..runner import block_stop_signals, wait_for_stop_signal
from ..settings import Settings


@click.command("nats")
@click.pass_obj
def nats_cmd(settings: Settings) -> None:
    """Run the embedded nats-server with JetStream on DATA_DIR/nats.

    It listens where FLEET_NATS_URL points (default nats://127.0.0.1:4222). When
    an external NATS is configured (FLEET_NATS_URL set, FLEET_EMBEDDED_NATS not
    true) it only waits, so that the Procfile keeps running.

    \b
    Example:
      fleet nats
      FLEET_NATS_URL=nats://127.0.0.1:4333 fleet nats
    """
    if not settings.embedded_nats:
        click.echo(f"external NATS configured ({settings.nats_url}); embedded server not started", err=True)
        block_stop_signals()
        wait_for_stop_signal()
        return
    host, port = port_of(settings.nats_url)
    server = NatsServer(settings.nats_store_dir, port=port, host=host)
    click.echo(f"nats-server on {server.url}, store {server.store_dir}", err=True)
    # exec: signals reach the server directly and it shuts down cleanly.
    os.execv(server.command()[0], server.command())


def register(cli: click.Group) -> None:
    cli.add_command(nats_cmd)


