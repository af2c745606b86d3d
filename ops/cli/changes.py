"""``fleet changes ...``: the graph-change stream (publish, tail, status).

The publisher is built from Settings by :func:`ops.wiring.change_publisher`,
as in the worker process.
"""

from __future__ import annotations

import asyncio
import json
import sys

import click
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from projections.changes.outbox import OutboxReader
from projections.model.ontology import NAME
from projections.model.records import KINDS
from projections.versions.catalog import Versions
from projections.versions.lanes import plan_lanes, read_watermark
from workers.natsio.client import connect
from workers.natsio.heartbeat import Heartbeat

from ..logs import configure_logging
from ..runner import run_until_signal
from ..settings import Settings
from ..startup import Startup
from ..telemetry import setup_telemetry
from ..wiring import change_publisher, graph_stream
from ._common import echo_json, json_option

__all__ = ["format_change"]

_PROJECTIONS = (NAME,)


@click.group("changes")
def changes_group() -> None:
    """Graph-change events for downstream services (the GRAPH stream).

    \b
    Example:
      fleet changes publish               # drain the outboxes to JetStream until SIGTERM
      fleet changes tail                  # follow new changes in the terminal
      fleet changes status --json
    """


@changes_group.command("publish")
@click.option("--until-drained", is_flag=True, help="Exit once every publishable change is acknowledged.")
@click.option("--batch", "batch_max", type=click.IntRange(min=1), default=None,
              help="Changes per publish round [FLEET_CHANGES_BATCH_MAX, default 1000].")
@click.option("--poll-ms", type=click.IntRange(min=1), default=None,
              help="Look at the outbox this often [FLEET_CHANGES_POLL_INTERVAL_MS, default 100].")
@json_option
@click.pass_obj
def publish_cmd(settings: Settings, until_drained: bool, batch_max: int | None, poll_ms: int | None,
                as_json: bool) -> None:
    """Run the change publisher standalone: outboxes -> the GRAPH stream until SIGTERM.

    Each change goes out with Nats-Msg-Id <projection>@v<version>:<seq>; the
    watermark moves only after JetStream acknowledged it. Exit code 3 when
    NATS cannot be reached within FLEET_STARTUP_TIMEOUT_SECS.

    \b
    Example:
      fleet changes publish
      fleet changes publish --until-drained --json
    """
    configure_logging("changes")
    telemetry = setup_telemetry("changes")

    async def main(stop: asyncio.Event):
        _, nc = await Startup(settings, stop).nats("fleet-changes", streams=[graph_stream(settings)])
        publisher = change_publisher(nc, settings, batch_max=batch_max, poll_ms=poll_ms)
        heartbeat = Heartbeat(nc.jetstream(), "changes", publisher.health, telemetry.snapshot,
                              interval_secs=settings.heartbeat_interval_secs)
        heartbeat.start()
        try:
            return await publisher.run(stop, until_drained=until_drained)
        finally:
            await heartbeat.stop()
            await nc.drain()

    try:
        stats = run_until_signal(main)
    finally:
        telemetry.shutdown()
    summary = {"published": stats.published, "duplicates": stats.duplicates,
               "skipped": stats.skipped, "version": stats.version, "watermark": stats.watermark,
               "head": stats.head, "backlog": stats.backlog, "errors": stats.errors}
    if as_json:
        echo_json(summary)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


def format_change(stream_seq: int, change: dict) -> str:
    """One terminal line: ``stream-seq v<version>:<seq> kind what``."""
    kind = change.get("kind", "?")
    head = f"{stream_seq:>8} {change.get('projection', '?')} v{change.get('version')}:{change.get('seq')}"
    if kind in ("node_upserted", "node_deleted"):
        what = f"{change.get('node')} ({change.get('node_type')})"
        if kind == "node_upserted":
            changed = change.get("changed")
            what += " new" if changed is None else f" changed={','.join(changed)}"
    elif kind == "rebuilt":
        previous = change.get("previous")
        what = (f"previous={'v' + str(previous) if previous is not None else '-'}"
                f" position={change.get('position')} digest={change.get('digest') or '-'}")
    else:
        what = f"{change.get('src')} -{change.get('edge')}-> {change.get('dst')}"
        if change.get("props"):
            what += f" {json.dumps(change['props'], sort_keys=True)}"
    cause = f" @{change['position']}" if change.get("position") and kind != "rebuilt" else ""
    marker = " [diff]" if change.get("diff") else ""
    return f"{head} {kind:<13} {what}{cause}{marker}"


@changes_group.command("tail")
@click.option("--projection", type=click.Choice(_PROJECTIONS), default=NAME, show_default=True)
@click.option("--from-seq", type=click.IntRange(min=1), default=None,
              help="Start at this GRAPH stream sequence [default: only new changes].")
@click.option("--all", "from_start", is_flag=True, help="Start at the beginning of the stream.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=None,
              help="Exit after this many changes.")
@json_option
@click.pass_obj
def tail_cmd(settings: Settings, projection: str, from_seq: int | None, from_start: bool,
             limit: int | None, as_json: bool) -> None:
    """Follow the graph-change stream, one line per change, until Ctrl-C.

    Lines read ``<stream seq> <projection> v<version>:<seq> <kind> <node or edge>``;
    --json prints each event's JSON body as it is on the wire.

    \b
    Example:
      fleet changes tail
      fleet changes tail --all --json | jq .kind
      fleet changes tail --from-seq 1200 -n 50
    """
    subject = f"{settings.graph_subject_prefix}.{projection}.>"

    async def main(stop: asyncio.Event) -> int:
        nc = await connect(settings.nats_url, name="fleet-changes-tail")
        js = nc.jetstream()
        seen = 0
        done = asyncio.Event()

        async def on_msg(msg) -> None:
            nonlocal seen
            if done.is_set():
                return
            if as_json:
                click.echo(msg.data.decode())
            else:
                click.echo(format_change(msg.metadata.sequence.stream, json.loads(msg.data)))
            seen += 1
            if limit is not None and seen >= limit:
                done.set()

        if from_seq is not None:
            policy, start = DeliverPolicy.BY_START_SEQUENCE, from_seq
        else:
            policy, start = (DeliverPolicy.ALL if from_start else DeliverPolicy.NEW), None
        try:
            await js.stream_info(settings.graph_stream)
        except NotFoundError:
            click.echo(f"error: no stream {settings.graph_stream} yet - run `fleet changes publish`",
                       err=True)
            await nc.close()
            return 1
        sub = await js.subscribe(subject, cb=on_msg, stream=settings.graph_stream,
                                 ordered_consumer=True,
                                 config=ConsumerConfig(deliver_policy=policy, opt_start_seq=start))
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(done.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        await sub.unsubscribe()
        await nc.close()
        return 0

    sys.exit(run_until_signal(main))


@changes_group.command("status")
@click.option("--projection", type=click.Choice(_PROJECTIONS), default=NAME, show_default=True)
@json_option
@click.pass_obj
def status_cmd(settings: Settings, projection: str, as_json: bool) -> None:
    """Per version: outbox head, publisher watermark, unpublished backlog, pruned floor.

    Building and ready versions are listed but never published (they emit nothing).
    Records up to the pruned floor were published and then deleted by the projector.

    \b
    Example:
      fleet changes status --json
    """
    versions = Versions(settings.projections_dir, projection)
    lanes = {lane.version for lane in plan_lanes(versions)}
    rows = []
    for info in versions.list():
        row = {"projection": projection, "version": info.version, "state": info.state,
               "published": info.version in lanes, "watermark": read_watermark(info.path)}
        try:
            reader = OutboxReader(info.path)
        except Exception:  # noqa: BLE001 - a version without an environment yet
            row.update(head=0, pruned=0, backlog=0)
        else:
            try:
                row["head"], row["pruned"] = reader.head(), reader.floor()
            finally:
                reader.close()
            row["backlog"] = max(0, row["head"] - row["watermark"]) if row["published"] else 0
        rows.append(row)
    if as_json:
        echo_json({"projection": projection, "kinds": list(KINDS) + ["rebuilt"], "versions": rows})
        return
    if not rows:
        click.echo(f"no versions of {projection} under {settings.projections_dir}")
        return
    click.echo(f"{'version':<9}{'state':<10}{'head':>10}{'watermark':>11}{'backlog':>9}{'pruned':>10}")
    for r in rows:
        click.echo(f"{'v' + str(r['version']):<9}{r['state']:<10}{r['head']:>10}{r['watermark']:>11}"
                   f"{r['backlog']:>9}{r['pruned']:>10}")


def register(cli: click.Group) -> None:
    cli.add_command(changes_group)
