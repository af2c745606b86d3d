"""``fleet api``: the HTTP service (the Procfile's ``api`` process)."""

from __future__ import annotations

import asyncio

import click

from ..logs import configure_logging
from ..ports import check_api_port
from ..runner import run_until_signal
from ..settings import Settings
from ..startup import Startup
from ..wiring import sdlc_stream


@click.command("api")
@click.option("--host", help="Address to bind [FLEET_API_HOST, default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="TCP port [FLEET_API_PORT, default 8080].")
@click.option("--replica", is_flag=True,
              help="Serve this host's replica (`fleet replica`): /readyz and /metrics judge it alone,"
                   " with its lag to the primary [FLEET_API_REPLICA].")
@click.pass_obj
def api_cmd(settings: Settings, host: str | None, port: int | None, replica: bool) -> None:
    """Serve health, readiness, metrics, webhooks and queries over HTTP until SIGTERM.

    GET /healthz (alive, no I/O), GET /readyz (fleet-wide: NATS reachable,
    projections within FLEET_READY_MAX_LAG), GET /metrics (Prometheus text).

    Binds to loopback unless told otherwise. Webhook endpoints:
    POST /hooks/gitlab (needs FLEET_GITLAB_TOKEN) and POST /hooks/github
    (needs FLEET_GITHUB_SECRET); an endpoint whose secret is not set answers
    503. SIGTERM stops accepting connections, finishes the requests in flight,
    drains NATS and exits 0. At start it waits up to FLEET_STARTUP_TIMEOUT_SECS
    for NATS (exit 3 after that; SIGTERM meanwhile exits 0).

    On a query host, --replica serves the projection `fleet replica` keeps
    there; readiness then follows that replica (FLEET_REPLICA_NAME): its lag
    to the primary within FLEET_READY_MAX_LAG, its projection current.

    \b
    Example:
      FLEET_GITHUB_SECRET=s3cret fleet api --port 8080
      curl -s localhost:8080/healthz
      FLEET_REPLICA_NAME=replica-b fleet api --replica
    """
    from ..api import run_api  # aiohttp is loaded only by the commands that serve
    from ..telemetry import setup_telemetry

    if replica or settings.api_replica:
        settings = settings.with_overrides(api_replica=True, expected_processes=settings.replica_name)
    check_api_port(host or settings.api_host, port or settings.api_port)  # before waiting for NATS
    configure_logging("api")
    telemetry = setup_telemetry("api")
    try:
        settings = run_until_signal(lambda stop: _start(settings, stop))
        run_api(settings.with_overrides(api_host=host, api_port=port), telemetry=telemetry)
    finally:
        telemetry.shutdown()


async def _start(settings: Settings, stop: asyncio.Event) -> Settings:
    """Wait for NATS, the SDLC stream and the heartbeat bucket (the app then connects at once)."""
    settings, nc = await Startup(settings, stop).nats("fleet-api", streams=[sdlc_stream(settings)])
    await nc.drain()
    return settings


def register(cli: click.Group) -> None:
    cli.add_command(api_cmd)
