"""``fleet ingest``: the ingest worker (the Procfile's ``ingest`` process)."""

from __future__ import annotations

import asyncio

import click

from workers.ingest.consumer import IngestWorker
from workers.natsio.heartbeat import Heartbeat

from ..logs import configure_logging
from ..runner import run_until_signal
from ..settings import Settings
from ..startup import Startup
from ..telemetry import setup_telemetry
from ..wiring import ingest_config, log_writer, open_log, sdlc_stream
from ._common import echo_json, json_option, positive_secs


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
        heartbeat = Heartbeat(nc.jetstream(), "ingest", worker.health, telemetry.snapshot,
                              interval_secs=settings.heartbeat_interval_secs)
        heartbeat.start()
        try:
            return await worker.run(stop, until_idle_secs=until_idle)
        finally:
            await heartbeat.stop()
            writer.close()
            await nc.drain()

    try:
        stats = run_until_signal(main)
    finally:
        telemetry.shutdown()
    with open_log(settings, readonly=True) as event_log:
        head = event_log.head
    summary = {"appended": stats.appended, "duplicates": stats.duplicates,
               "quarantined": stats.quarantined, "batches": stats.batches, "head": head,
               "rewinds": stats.rewinds, "gone": stats.gone}
    if as_json:
        echo_json(summary)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


def register(cli: click.Group) -> None:
    cli.add_command(ingest_cmd)
