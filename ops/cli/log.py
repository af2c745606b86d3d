"""``fleet log ...`` and ``fleet verify``: read and check the immutable log."""

from __future__ import annotations

import json
import sys
import time

import click

from events.logrows import LogEntry

from ..settings import Settings
from ..wiring import open_log
from ._common import echo_json, json_option
from .exits import EXIT_PROBLEM


#: positions are SQLite integers (64-bit signed)
_MAX_POSITION = 2**63 - 1


def _entry_dict(entry: LogEntry) -> dict:
    return {
        "position": entry.position,
        "event_id": entry.event_id,
        "type": entry.type,
        "source": entry.source,
        "subject": entry.subject,
        "occurred_at": entry.occurred_at,
        "recorded_at": entry.recorded_at,
        "event": json.loads(entry.payload),
    }


def _line(entry: LogEntry) -> str:
    return f"{entry.position:>10}  {entry.recorded_at}  {entry.type:<32} {entry.source:<10} {entry.event_id}"


@click.group("log")
def log_group() -> None:
    """Inspect the immutable event log (DATA_DIR/log.db)."""


@log_group.command("tail")
@click.option("-n", "--lines", "n", type=click.IntRange(min=1, max=_MAX_POSITION), default=10,
              show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they are committed.")
@json_option
@click.pass_obj
def tail_cmd(settings: Settings, n: int, follow: bool, as_json: bool) -> None:
    """Print the last events of the log, oldest first.

    \b
    Example:
      fleet log tail -n 20
      fleet log tail --follow --json
    """
    with open_log(settings, readonly=True) as event_log:
        entries = event_log.tail(n)
        emit = (lambda e: click.echo(json.dumps(_entry_dict(e)))) if as_json else (lambda e: click.echo(_line(e)))
        for entry in entries:
            emit(entry)
        position = entries[-1].position if entries else 0
        while follow:
            for batch in event_log.read(position + 1, batch_size=1000):
                for entry in batch:
                    emit(entry)
                position = batch[-1].position
            time.sleep(0.5)


@log_group.command("show")
@click.argument("ref")
@click.pass_obj
def show_cmd(settings: Settings, ref: str) -> None:
    """Print one event, by log position or by event id, as JSON.

    \b
    Example:
      fleet log show 42
      fleet log show 0b7c3f2e-5d1a-4c8e-9f7a-1e2d3c4b5a69
    """
    if ref.isascii() and ref.isdigit() and int(ref) > _MAX_POSITION:
        raise click.BadParameter(f"{ref} is past the largest log position ({_MAX_POSITION}, SQLite's"
                                 " largest integer) - give a position from `fleet log stats`, or an"
                                 " event id", param_hint="POSITION")
    with open_log(settings, readonly=True) as event_log:
        echo_json(_entry_dict(event_log.get(ref)))


@log_group.command("stats")
@json_option
@click.pass_obj
def stats_cmd(settings: Settings, as_json: bool) -> None:
    """Count, head position, events by type and source, quarantine, size on disk.

    \b
    Example:
      fleet log stats --json
    """
    with open_log(settings, readonly=True) as event_log:
        stats = event_log.stats()
    if as_json:
        echo_json(stats)
        return
    click.echo(f"log:        {stats['path']}")
    click.echo(f"events:     {stats['count']}  (head position {stats['head']})")
    click.echo(f"size:       {stats['size_bytes'] / 1e6:.1f} MB")
    click.echo(f"quarantine: {stats['quarantine'] or 'empty'}")
    click.echo("by source:  " + ", ".join(f"{k}={v}" for k, v in stats["by_source"].items()))
    click.echo("by type:")
    for name, count in stats["by_type"].items():
        click.echo(f"  {name:<36} {count}")


@click.command("verify")
@json_option
@click.pass_obj
def verify_cmd(settings: Settings, as_json: bool) -> None:
    """Prove the log intact: hash chain, dense positions, every id indexed.

    Exit code 0 when intact, 1 when a problem was found (each is printed).

    \b
    Example:
      fleet verify
    """
    interactive = sys.stderr.isatty() and not as_json

    def progress(done: int, total: int) -> None:
        if interactive:
            click.echo(f"\rverified {done}/{total}", nl=False, err=True)

    with open_log(settings, readonly=True) as event_log:
        report = event_log.verify(progress=progress)
    if interactive:
        click.echo("", err=True)
    if as_json:
        echo_json({"ok": report.ok, "checked": report.checked, "head": report.head,
                   "head_hash": report.head_hash, "problems": list(report.problems)})
    elif report.ok:
        click.echo(f"ok: {report.checked} events, hash chain intact, positions dense,"
                   f" head hash {report.head_hash}")
    else:
        for problem in report.problems:
            click.echo(f"problem: {problem}")
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


def register(cli: click.Group) -> None:
    cli.add_command(log_group)
    cli.add_command(verify_cmd)
