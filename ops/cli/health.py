"""``fleet health``: every process, lag, backlog and quarantine; exit 0 only when healthy."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone

import click

from ..health import gather
from ..settings import Settings
from ._common import echo_json, json_option
from .exits import EXIT_PROBLEM


@click.command("health")
@click.option("--expect", help="Comma-separated processes that must be up [FLEET_EXPECTED_PROCESSES].")
@json_option
@click.pass_obj
def health_cmd(settings: Settings, expect: str | None, as_json: bool) -> None:
    """Report the fleet's health and exit non-zero, naming the culprits, when it is not healthy.

    Each process is ok, starting, rebuilding, stuck, down or never started, from
    its heartbeat in the JetStream KV bucket; projections report lag (log head
    minus checkpoint); the ingest consumer its pending messages; the log its
    head and open quarantine.

    \b
    Example:
      fleet health
      fleet health --json --expect ingest,worker,api
    """
    expected = settings.with_overrides(expected_processes=expect).expected
    report = asyncio.run(gather(settings, expected=expected))
    if as_json:
        echo_json(report.to_dict())
    else:
        stamp = datetime.fromtimestamp(report.at, timezone.utc).isoformat(timespec="seconds")
        click.echo(f"fleet {'healthy' if report.ok else 'NOT HEALTHY'} at {stamp}")
        for c in report.components:
            mark = " " if c.healthy else "!"
            click.echo(f"{mark} {c.kind:<10} {c.name:<28} {c.state:<14} {c.detail}")
        if not report.ok:
            click.echo("culprits: " + ", ".join(f"{c.name} ({c.state})" for c in report.culprits), err=True)
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


def register(cli: click.Group) -> None:
    cli.add_command(health_cmd)
