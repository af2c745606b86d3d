"""``fleet health``: every process, lag, backlog and quarantine; exit 0 only when healthy
(with ``--ready``: only when ready, as ``/readyz`` judges the same report)."""

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
@click.option("--ready", "need_ready", is_flag=True,
              help="Exit non-zero also when the fleet is not ready (what /readyz answers 503 for).")
@json_option
@click.pass_obj
def health_cmd(settings: Settings, expect: str | None, need_ready: bool, as_json: bool) -> None:
    """Report the fleet's health and exit non-zero, naming the culprits, when it is not healthy.

    Each process is ok, starting, rebuilding, stuck, down or never started, from
    its heartbeat in the JetStream KV bucket; projections report lag (log head
    minus checkpoint); the ingest consumer its pending messages; the log its
    head and open quarantine.

    A projection more than FLEET_READY_MAX_LAG events behind, or building its
    first version, is "catching up: lag N, R events/s, ETA T": healthy (exit 0)
    but not ready; /readyz answers 503 with the same line. --ready makes that
    exit 1 too.

    \b
    Example:
      fleet health
      fleet health --ready
      fleet health --json --expect ingest,worker,api
    """
    expected = settings.with_overrides(expected_processes=expect).expected
    report = asyncio.run(gather(settings, expected=expected))
    if as_json:
        echo_json(report.to_dict())
    else:
        stamp = datetime.fromtimestamp(report.at, timezone.utc).isoformat(timespec="seconds")
        ready = "ready" if report.ready else "NOT READY"
        click.echo(f"fleet {'healthy' if report.ok else 'NOT HEALTHY'}, {ready} at {stamp}")
        for c in report.components:
            mark = " " if c.healthy and c.ready else ("~" if c.healthy else "!")
            click.echo(f"{mark} {c.kind:<10} {c.name:<28} {c.state:<14} {c.detail}")
        for reason in report.not_ready:
            click.echo(f"not ready: {reason}")
        if not report.ok:
            click.echo("culprits: " + ", ".join(f"{c.name} ({c.state})" for c in report.culprits), err=True)
    if not report.ok or (need_ready and not report.ready):
        sys.exit(EXIT_PROBLEM)


def register(cli: click.Group) -> None:
    cli.add_command(health_cmd)
