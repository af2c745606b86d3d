"""``fleet quarantine ...``: list, show and re-drive bad input."""

from __future__ import annotations

import sys

import click

from events.codec import decode_event
from events.errors import InvalidEvent
from events.types import subject_for
from workers.natsio.publish import Publisher
from workers.natsio.streams import ensure_stream

from ..settings import Settings
from ..wiring import open_log, sdlc_stream
from ._common import echo_json, json_option, run_with_nats
from .exits import EXIT_PROBLEM


@click.group("quarantine")
def quarantine_group() -> None:
    """Bad input kept with its raw bytes and reason: list, show, retry."""


@quarantine_group.command("list")
@click.option("--status", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@click.pass_obj
def list_cmd(settings: Settings, status: str, limit: int, as_json: bool) -> None:
    """List quarantined input, oldest first.

    \b
    Example:
      fleet quarantine list --json
    """
    with open_log(settings, readonly=True) as event_log:
        items = event_log.quarantine_list(status=None if status == "all" else status, limit=limit)
    if as_json:
        echo_json(items)
        return
    if not items:
        click.echo("quarantine is empty")
    for item in items:
        click.echo(f"{item['id']:>6}  {item['received_at']}  {item['status']:<8} {item['reason']:<12} "
                   f"seq={item['stream_seq']} {item['subject']}  {item['detail'][:100]}")


@quarantine_group.command("show")
@click.argument("item_id", type=int)
@json_option
@click.pass_obj
def show_cmd(settings: Settings, item_id: int, as_json: bool) -> None:
    """Show one quarantined item with its raw bytes.

    \b
    Example:
      fleet quarantine show 3
    """
    with open_log(settings, readonly=True) as event_log:
        item = event_log.quarantine_get(item_id)
    raw = item.pop("raw")
    item["raw"] = raw.decode("utf-8", errors="replace")
    item["raw_bytes"] = len(raw)
    if as_json:
        echo_json(item)
        return
    for key, value in item.items():
        if key != "raw":
            click.echo(f"{key:<12} {value}")
    click.echo("raw:")
    click.echo(item["raw"][:4000] + ("..." if len(item["raw"]) > 4000 else ""))


@quarantine_group.command("retry")
@click.argument("item_ids", type=int, nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every open item.")
@click.option("--reason", help="Only items quarantined for this reason (e.g. oversized).")
@json_option
@click.pass_obj
def retry_cmd(settings: Settings, item_ids: tuple[int, ...], retry_all: bool, reason: str | None,
              as_json: bool) -> None:
    """Re-drive quarantined input through the same validation, after a fix.

    Items that now validate are republished to the SDLC stream (the ingest
    worker appends them; the log drops ids it already has) and marked resolved.
    Items that still fail stay open and their reason is printed. Exit code 1
    when any item still fails.

    \b
    Example:
      fleet quarantine retry 3 4
      FLEET_MAX_EVENT_BYTES=4194304 fleet quarantine retry --all --reason oversized
    """
    if not item_ids and not retry_all:
        raise click.UsageError("name the item ids to retry, or pass --all")
    event_log = open_log(settings)
    try:
        if item_ids:
            items = [event_log.quarantine_get(i) for i in item_ids]
        else:
            items = [event_log.quarantine_get(i["id"]) for i in event_log.quarantine_list(limit=1_000_000)]
        if reason:
            items = [i for i in items if i["reason"] == reason]
        outcomes = []
        ready = []
        for item in items:
            if item["status"] != "open":
                outcomes.append({"id": item["id"], "outcome": "skipped", "detail": "already resolved"})
                continue
            try:
                event = decode_event(item["raw"], max_bytes=settings.max_event_bytes)
            except InvalidEvent as e:
                outcomes.append({"id": item["id"], "outcome": "still_invalid", "detail": str(e)})
                continue
            ready.append((item, event))

        async def work(nc):
            await ensure_stream(nc.jetstream(), sdlc_stream(settings))
            publisher = Publisher(nc)
            try:
                for item, event in ready:
                    await publisher.publish(subject_for(event, settings.subject_prefix), item["raw"],
                                            msg_id=f"{event.event_id}#retry{item['id']}")
                return await publisher.flush()
            finally:
                await publisher.close()

        if ready:
            report = run_with_nats(settings, "fleet-quarantine-retry", work)
            if report.errors:
                raise click.ClickException("JetStream refused the retry: " + "; ".join(report.errors[:5]))
            for item, event in ready:
                event_log.quarantine_resolve(item["id"], f"retried: republished as event {event.event_id}")
                outcomes.append({"id": item["id"], "outcome": "republished", "detail": event.event_id})
    finally:
        event_log.close()
    if as_json:
        echo_json(outcomes)
    else:
        if not outcomes:
            click.echo("nothing to retry")
        for o in outcomes:
            click.echo(f"{o['id']:>6}  {o['outcome']:<14} {o['detail']}")
    if any(o["outcome"] == "still_invalid" for o in outcomes):
        sys.exit(EXIT_PROBLEM)


def register(cli: click.Group) -> None:
    cli.add_command(quarantine_group)
