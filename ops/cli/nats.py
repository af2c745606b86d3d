"""``fleet nats``: the embedded nats-server (the Procfile's ``nats`` process) and its users."""

from __future__ import annotations

import os

import click

from ..embedded import NatsServer, max_payload_for, port_of
from ..natsauth import ensure_credentials
from ..ports import check_nats_port
from ..runner import block_stop_signals, wait_for_stop_signal
from ..settings import Settings
from ._common import echo_json, json_option
from .exits import EXIT_USAGE


def embedded_server(settings: Settings, *, port: int | None = None) -> NatsServer:
    """The embedded server as the settings shape it (address, payload limit, permissions)."""
    host, configured_port = port_of(settings.nats_url)
    return NatsServer(settings.nats_store_dir, port=port or configured_port, host=host,
                      max_payload_bytes=max_payload_for(settings.max_event_bytes),
                      scope=settings.nats_scope, server_name=settings.nats_server_name,
                      cluster_name=settings.nats_cluster_name,
                      cluster_port=settings.nats_cluster_port, routes=settings.cluster_routes)


@click.group("nats", invoke_without_command=True)
@click.pass_context
def nats_group(ctx: click.Context) -> None:
    """Run the embedded nats-server with JetStream on DATA_DIR/nats.

    It listens where FLEET_NATS_URL points (default nats://127.0.0.1:4222,
    loopback only; in a list of servers, the first: this host's) and
    requires a user: the fleet's, a producer's (publishes
    to sdlc.> only) and a subscriber's (reads the GRAPH stream only), with
    passwords generated at the first start into DATA_DIR/nats/auth.json
    (mode 0600). `fleet nats credentials` prints the producer's and the
    subscriber's. When an external NATS is configured (FLEET_NATS_URL set,
    FLEET_EMBEDDED_NATS not true) it only waits, so that the Procfile keeps
    running.

    As one member of a JetStream cluster (FLEET_NATS_CLUSTER_PORT set) it
    routes to FLEET_NATS_CLUSTER_ROUTES under FLEET_NATS_SERVER_NAME; every
    member needs the same DATA_DIR/nats/auth.json (copy the first one's) and
    FLEET_STREAM_REPLICAS=3 makes the fleet's streams survive one member's
    loss (README "Beyond one machine").

    \b
    Example:
      fleet nats
      FLEET_NATS_URL=nats://127.0.0.1:4333 FLEET_EMBEDDED_NATS=true fleet nats
      FLEET_NATS_URL=nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222 \\
        FLEET_EMBEDDED_NATS=true FLEET_NATS_SERVER_NAME=nats-a FLEET_NATS_CLUSTER_PORT=6222 \\
        FLEET_NATS_CLUSTER_ROUTES=nats-route://10.0.0.2:6222,nats-route://10.0.0.3:6222 fleet nats
    """
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    if not settings.embedded_nats:
        click.echo(f"external NATS configured ({settings.public_nats_url}); embedded server not"
                   " started (FLEET_EMBEDDED_NATS=true runs it there)", err=True)
        block_stop_signals()
        wait_for_stop_signal()
        return
    server = embedded_server(settings)
    check_nats_port(server.host, server.port)
    command = server.prepare()
    click.echo(f"nats-server on {server.address}, store {server.store_dir}, users in"
               f" {settings.nats_auth_path}", err=True)
    # exec: signals reach the server directly and it shuts down cleanly.
    os.execv(command[0], command)


@nats_group.command("credentials")
@json_option
@click.pass_obj
def credentials_cmd(settings: Settings, as_json: bool) -> None:
    """Print the URLs (with user and password) producers and subscribers connect with.

    producer: may publish canonical events to <FLEET_SUBJECT_PREFIX>.> and
    nothing else (no consuming, no JetStream administration). subscriber:
    may read the GRAPH stream (create and fetch from consumers on it,
    subscribe to <FLEET_GRAPH_SUBJECT_PREFIX>.>) and not publish events.
    The credentials are created if the server never ran. Only for the
    embedded server: an external NATS's users are its operator's.

    \b
    Example:
      fleet nats credentials
      fleet nats credentials --json | jq -r .producer.url
    """
    if not settings.embedded_nats:
        click.echo(f"error: an external NATS is configured ({settings.public_nats_url}): its users"
                   " and permissions are set in its own configuration (README: Security)", err=True)
        raise SystemExit(EXIT_USAGE)
    ensure_credentials(settings.nats_auth_path)
    server = embedded_server(settings)
    roles = {
        "producer": f"publish to {settings.subject_prefix}.> only",
        "subscriber": f"read stream {settings.graph_stream} ({settings.graph_subject_prefix}.>) only",
    }
    found = {role: {"user": role, "password": server.credentials.passwords[role],
                    "url": server.url_for(role), "may": may} for role, may in roles.items()}
    if as_json:
        echo_json(found)
        return
    for role, info in found.items():
        click.echo(f"{role:<10}  {info['url']}  ({info['may']})")
    click.echo(f"(from {settings.nats_auth_path}; keep them secret)", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(nats_group)
