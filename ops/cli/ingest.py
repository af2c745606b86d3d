"""``fleet ingest``: the ingest worker (the Procfile's ``ingest`` process)."""

from __future__ import annotations

import asyncio
import logging

import click

from events.errors import TransientError
from workers.ingest.consumer import IngestWorker
from workers.natsio.heartbeat import Heartbeat
from workers.shipper.shipper import LogShipper

from ..logs import configure_logging
from ..runner import run_until_signal
from ..settings import Settings
from ..startup import Startup
from ..telemetry import setup_telemetry
from ..wiring import ingest_config, log_writer, open_log, sdlc_stream, ship_config
from ._common import echo_json, json_option, positive_secs

log = logging.getLogger("fleet.ingest")


@click.command("ingest")
@click.option("--until-idle", type=positive_secs, metavar="SECS",
              help="Exit once the stream is drained and quiet for SECS seconds (more than 0).")
@json_option
@click.pass_obj
def ingest_cmd(settings: Settings, until_idle: float | None, as_json: bool) -> None:
    """Consume the SDLC stream into the immutable log until SIGTERM.

    SIGTERM finishes the batch in hand (commit, then ack) and exits 0. At
    start it waits up to FLEET_STARTUP_TIMEOUT_SECS for NATS and the stream
    (exit 3 after that; SIGTERM meanwhile exits 0).

    With FLEET_LOG_SHIPPING=true it also ships every committed row to the
    replicated LOG stream (FLEET_LOG_STREAM) that `fleet replica` builds
    its log from; a log whose history differs from the stream's stops
    ingest with a message (exit 1).

    \b
    Example:
      fleet ingest
      fleet ingest --until-idle 2 --json
    """
    configure_logging("ingest")
    telemetry = setup_telemetry("ingest")

    async def main(stop: asyncio.Event):
        _, nc = await Startup(settings, stop).nats("fleet-ingest", streams=[sdlc_stream(settings)])
        try:
            writer = log_writer(settings)
        except BaseException:
            await nc.close()
            raise
        worker = IngestWorker(nc, writer, ingest_config(settings))
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
