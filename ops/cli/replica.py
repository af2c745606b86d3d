"""``fleet replica``: a query host's log, built from the LOG stream, and its projection."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace

import click

from ..logs import configure_logging
from ..runner import run_until_signal
from ..settings import Settings
from ..startup import Startup
from ..telemetry import setup_telemetry
from ..wiring import log_stream, replica_config
from ._common import echo_json, json_option, positive_secs
from .exits import EXIT_PROBLEM


@click.command("replica")
@click.option("--until-idle", type=positive_secs, metavar="SECS",
              help="Exit once the log has every shipped row, the projection has applied it and"
                   " nothing came for SECS seconds.")
@json_option
@click.pass_obj
def replica_cmd(settings: Settings, until_idle: float | None, as_json: bool) -> None:
    """Keep this host's log a copy of the primary's, from the LOG stream, and project it.

    Rows are appended exactly as the primary committed them (same positions,
    ids, recorded_at and hashes: `fleet verify` gives the same head hash at
    the same position); a row whose hash does not chain is refused and the
    replica exits 1 saying which. The projection is built and kept current
    by the same projector as the worker's; `fleet api --replica` serves it.
    Killed at any point, it resumes after the last row its log holds. Its
    heartbeat (FLEET_REPLICA_NAME) carries its lag to the primary. The
    primary ships with FLEET_LOG_SHIPPING=true (README "Beyond one machine").

    \b
    Example:
      FLEET_NATS_URL=nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222 \\
        FLEET_REPLICA_NAME=replica-b fleet replica
      fleet replica --until-idle 1 --json
    """
    from projections.store.env import defer_sync
    from workers.natsio.heartbeat import Heartbeat
    from workers.projector.loop import Projector
    from workers.shipper.replica import LogReplica

    from ..wiring import projector_config

    configure_logging(settings.replica_name)
    telemetry = setup_telemetry(settings.replica_name)
    defer_sync(settings.projection_sync_ms / 1000)

    async def main(stop: asyncio.Event):
        _, nc = await Startup(settings, stop).nats("fleet-replica", streams=[log_stream(settings)])
        # Nobody publishes a replica's change records (the writer host's worker feeds GRAPH):
        # its outbox is pruned as it is written.
        projector = Projector(settings.log_path, settings.projections_dir,
                              replace(projector_config(settings, auto_rebuild=True), unpublished=True))
        replica = LogReplica(nc, settings.log_path, replica_config(settings),
                             on_append=lambda _: projector.notify())

        def status() -> tuple[str, dict]:
            stats = projector.stats
            lag = replica.stats.lag
            projection = {"name": projector.name, "version": stats.version,
                          "state": "rebuilding" if projector.rebuilding else "ok",
                          "checkpoint": stats.position if stats.version is not None else None,
                          "head": stats.head, "lag": max(0, stats.head - stats.position),
                          "progress_at": replica.stats.progress_at, "poisoned": stats.poisoned}
            if projector.rebuilding and stats.version is None:
                projection["first_build"] = True
            return "ok", {"replica": replica.health(), "projections": [projection], "backlog": lag,
                          "progress_at": replica.stats.progress_at}

        heartbeat = Heartbeat(nc.jetstream(), settings.replica_name, status, telemetry.snapshot,
                              interval_secs=settings.heartbeat_interval_secs)
        projecting_stop = asyncio.Event()
        projecting = None
        try:
            await replica.setup()
            heartbeat.start()
            projecting = asyncio.create_task(projector.run(projecting_stop))
            await replica.run(stop, until_idle_secs=until_idle)
            if until_idle is not None:
                # What the log holds now, projected to the end (a first build included).
                await _projected(projector, replica.stats.position, stop, projecting)
            return replica.stats, projector.stats
        finally:
            projecting_stop.set()
            if projecting is not None and not projecting.done():
                await projecting
            await heartbeat.stop()
            await nc.drain()

    try:
        stats, projected = run_until_signal(main)
    finally:
        telemetry.shutdown()
    summary = {"position": stats.position, "primary": stats.primary, "lag": stats.lag,
               "applied": stats.applied, "projection_version": projected.version,
               "projection_position": projected.position, "poisoned": projected.poisoned,
               "rebuild_error": projected.rebuild_error}
    if as_json:
        echo_json(summary)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in summary.items()))
    if projected.rebuild_error:
        click.echo(f"error: {projected.rebuild_error}", err=True)
        sys.exit(EXIT_PROBLEM)
    if until_idle is not None and stats.position and projected.position < stats.position:
        click.echo(f"error: the projection stopped at position {projected.position}, the log is at"
                   f" {stats.position} (`fleet projections` shows why)", err=True)
        sys.exit(EXIT_PROBLEM)


#: how long `--until-idle` waits for a projector that shows no progress at all
_STALLED_SECS = 60.0


async def _projected(projector, head: int, stop: asyncio.Event, projecting: asyncio.Task) -> None:
    """Wait until the projector has applied the log up to ``head`` with this code's version
    (or stops, or shows no progress for ``_STALLED_SECS``: the summary then says where it is)."""
    stats = projector.stats
    loop = asyncio.get_running_loop()
    seen, moved_at = None, loop.time()
    while head and not stop.is_set() and not projecting.done() and not stats.rebuild_error:
        if stats.version == projector.version and stats.position >= head and not projector.rebuilding:
            return
        now = (stats.version, stats.position, stats.applied, projector.rebuilding)
        if now != seen:
            seen, moved_at = now, loop.time()
        elif not projector.rebuilding and loop.time() - moved_at > _STALLED_SECS:
            return
        projector.notify()
        await asyncio.sleep(0.05)


def register(cli: click.Group) -> None:
    cli.add_command(replica_cmd)
