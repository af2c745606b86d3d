"""``fleet ingest``: the ingest worker (the Procfile's ``ingest`` process)."""

from __future__ import annotations

import asyncio
import logging

import click

from events.errors import NotFound, TransientError
from workers.ingest.consumer import IngestWorker
from workers.ingest.lease import WriterLease
from workers.natsio.heartbeat import Heartbeat
from workers.shipper.shipper import LogShipper, ShippedBehind, last_shipped

from ..logs import configure_logging
from ..runner import run_until_signal
from ..settings import Settings
from ..startup import Startup
from ..telemetry import setup_telemetry
from ..wiring import ingest_config, lease_key, log_writer, open_log, sdlc_stream, ship_config
from ._common import echo_json, json_option, positive_secs

log = logging.getLogger("fleet.ingest")


@click.command("ingest")
@click.option("--until-idle", type=positive_secs, metavar="SECS",
              help="Exit once the stream is drained and quiet for SECS seconds (more than 0).")
@click.option("--take-over", is_flag=True,
              help="Become the log's writer on this replica host (its log caught up with LOG): wait"
                   " for the lost writer's lease to lapse, take it, ingest from this log's checkpoint"
                   " and ship.")
@json_option
@click.pass_obj
def ingest_cmd(settings: Settings, until_idle: float | None, take_over: bool, as_json: bool) -> None:
    """Consume the SDLC stream into the immutable log until SIGTERM.

    SIGTERM finishes the batch in hand (commit, then ack) and exits 0. At
    start it waits up to FLEET_STARTUP_TIMEOUT_SECS for NATS and the stream
    (exit 3 after that; SIGTERM meanwhile exits 0).

    With FLEET_LOG_SHIPPING=true it also ships every committed row to the
    replicated LOG stream (FLEET_LOG_STREAM) that `fleet replica` builds
    its log from; a log whose history differs from the stream's stops
    ingest with a message (exit 1).

    The writer holds a lease (a key in the fleet_writer JetStream bucket,
    lapsing FLEET_LEASE_TTL_SECS after its last renewal): an ingest that
    finds it held by another host's writer, or loses it, refuses to write
    and exits 1 saying who holds it. When the writer's host is lost,
    `fleet ingest --take-over` on a query host (its `fleet replica` stopped,
    its log caught up with LOG) waits for the lease to lapse and takes it.

    \b
    Example:
      fleet ingest
      fleet ingest --until-idle 2 --json
      fleet ingest --take-over
    """
    configure_logging("ingest")
    telemetry = setup_telemetry("ingest")
    if take_over:
        settings = settings.with_overrides(log_shipping=True)

    async def main(stop: asyncio.Event):
        _, nc = await Startup(settings, stop).nats("fleet-ingest", streams=[sdlc_stream(settings)])
        lease = WriterLease(nc.jetstream(), lease_key(settings), settings.data_dir,
                            ttl_secs=settings.lease_ttl_secs, replicas=settings.stream_replicas)
        try:
            if take_over:
                await check_caught_up(nc, settings)
            await lease.acquire(wait_secs=3 * settings.lease_ttl_secs if take_over else 0)
            writer = log_writer(settings)
        except BaseException:
            await lease.release()
            await nc.close()
            raise
        lease.start(on_lost=stop.set)
        worker = IngestWorker(nc, writer, ingest_config(settings), guard=lease.check)
        shipper = LogShipper(nc, settings.log_path, ship_config(settings)) if settings.log_shipping else None

        def status() -> tuple[str, dict]:
            state, details = worker.health()
            if shipper is not None:
                details["shipping"] = shipper.health()
            return state, details

        heartbeat = Heartbeat(nc.jetstream(), "ingest", status, telemetry.snapshot,
                              interval_secs=settings.heartbeat_interval_secs)
        heartbeat.start()
        ship_stop = asyncio.Event()
        shipping = asyncio.create_task(shipper.run(ship_stop), name="log-shipper") if shipper else None
        if shipping is not None:
            shipping.add_done_callback(lambda _: stop.set())  # a shipper that gives up stops ingest
        try:
            stats = await worker.run(stop, until_idle_secs=until_idle)
            lease.check()  # lost while idle: say so, exit 1
            if shipper is not None and not shipping.done():
                await drain_shipping(shipper)
            return stats, shipper.shipped if shipper is not None else None
        finally:
            ship_stop.set()
            try:
                if shipping is not None:
                    await shipping  # raises why the shipper gave up, if it did
            finally:
                await heartbeat.stop()
                writer.close()
                await lease.release()
                await nc.drain()

    try:
        stats, shipped = run_until_signal(main)
    finally:
        telemetry.shutdown()
    with open_log(settings, readonly=True) as event_log:
        head = event_log.head
    summary = {"appended": stats.appended, "duplicates": stats.duplicates,
               "quarantined": stats.quarantined, "batches": stats.batches, "head": head,
               "rewinds": stats.rewinds, "gone": stats.gone}
    if shipped is not None:
        summary["shipped"] = shipped
    if as_json:
        echo_json(summary)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


async def check_caught_up(nc, settings: Settings) -> None:
    """A take-over starts from a log that holds everything LOG does (else rows would be lost)."""
    last, _ = await last_shipped(nc.jetstream(), settings.log_stream)
    try:
        with open_log(settings, readonly=True) as event_log:
            head = event_log.head
    except NotFound:
        head = 0
    if head < last:
        raise ShippedBehind(f"this log ({settings.log_path}) is at position {head}, the LOG stream"
                            f" {settings.log_stream} at {last}: run `fleet replica --until-idle 1` to"
                            " catch up, then take over")


async def drain_shipping(shipper: LogShipper, *, timeout_secs: float = 30) -> None:
    """Ship what the log holds before the process stops (bounded: a resume picks up the rest)."""
    async def drain() -> None:
        while await shipper.ship_once():
            pass
    try:
        await asyncio.wait_for(drain(), timeout_secs)
    except (TimeoutError, TransientError) as e:
        log.warning("stopped before shipping everything; the next start resumes", extra={
            "shipped": shipper.shipped, "head": shipper.head, "error": repr(e)})


def register(cli: click.Group) -> None:
    cli.add_command(ingest_cmd)
