"""``fleet worker``: the dramatiq worker process (projector, rebuilds, change publisher)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any, Callable

import click

from workers.natsio.client import redact_url

from ..logs import configure_logging
from ..runner import block_stop_signals, run_until_signal, wait_for_stop_signal
from ..settings import Settings, is_nats_name
from ..startup import Startup
from ..telemetry import setup_telemetry
from ..wiring import graph_stream
from .exits import EXIT_PROBLEM


def _check_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not is_nats_name(value):
        raise click.BadParameter(f"{value!r} is not a process name - use letters, digits, '-' and '_'"
                                 " (it becomes a heartbeat key), e.g. worker-next")
    return value


@click.command("worker")
@click.option("--threads", type=click.IntRange(1, 64), help="dramatiq worker threads [FLEET_WORKER_THREADS].")
@click.option("--name", "process_name", default="worker", show_default=True, callback=_check_name,
              help="The process's name in `fleet health` (its Procfile name): a second release"
                   " deployed beside the running one needs its own, e.g. worker-next.")
@click.pass_obj
def worker_cmd(settings: Settings, threads: int | None, process_name: str) -> None:
    """Run the dramatiq actors that keep the graph current, until SIGTERM.

    graph.apply applies new log entries to the active projection version,
    graph.rebuild builds a new version beside it (started by itself when the
    code's projection version is not the active one) and promotes it,
    graph.publish_changes drains the outbox to the GRAPH stream. Messages
    travel over JetStream (FLEET_BROKER_URL, default the NATS URL); a redis://
    or amqp:// URL selects dramatiq's own brokers. At start it waits up to
    FLEET_STARTUP_TIMEOUT_SECS for NATS (exit 3 after that; SIGTERM meanwhile
    exits 0).

    During a deploy the new release's worker runs beside the old one (README
    "Version lifecycle"): it builds its code's version while
    the old one keeps applying and publishing the active version, and takes
    over at the promotion.

    \b
    Example:
      fleet worker --threads 4
      /opt/graphfleet-next/.venv/bin/fleet worker --name worker-next
    """
    import dramatiq

    from projections.store.env import defer_sync
    from workers.broker import broker_from_url
    from workers.broker.actors import declare_actors
    from workers.broker.telemetry import OpenTelemetryMiddleware
    from workers.projector.runtime import WorkerRuntime

    from ..wiring import change_publisher, runtime_config

    configure_logging(process_name)
    telemetry = setup_telemetry(process_name)
    try:
        settings, broker = run_until_signal(lambda stop: _start(settings, stop, broker_from_url))
    except BaseException:
        telemetry.shutdown()
        raise
    defer_sync(settings.projection_sync_ms / 1000)
    broker.add_middleware(OpenTelemetryMiddleware())
    dramatiq.set_broker(broker)
    runtime = WorkerRuntime(runtime_config(settings, process_name), metrics=telemetry.snapshot,
                            publisher_factory=lambda nc: change_publisher(nc, settings),
                            on_failure=lambda: os.kill(os.getpid(), signal.SIGTERM))
    runtime.actors = declare_actors(broker, apply=runtime.apply, rebuild=runtime.rebuild,
                                    publish=runtime.publish, code_version=runtime.projector.version)
    worker = dramatiq.Worker(broker, worker_threads=threads or settings.worker_threads)
    block_stop_signals()  # before any thread starts, so only sigwait sees them
    runtime.start()
    worker.start()
    try:
        wait_for_stop_signal()
    finally:
        runtime.stopping()  # a rebuild in an actor pauses now, or worker.stop() waits for its end
        worker.stop()
        try:
            runtime.stop()
        finally:
            broker.close()
            telemetry.shutdown()
    if runtime.failure is not None:
        click.echo(f"error: the projector stopped: {runtime.failure}", err=True)
        sys.exit(EXIT_PROBLEM)


async def _start(settings: Settings, stop: asyncio.Event, broker_from_url: Callable[[str], Any]
                 ) -> tuple[Settings, Any]:
    """Wait for NATS, the GRAPH stream and the heartbeat bucket, then connect the broker.

    The Procfile starts every process at once: each step is retried until
    FLEET_STARTUP_TIMEOUT_SECS instead of letting a first failure stop the fleet.
    """
    startup = Startup(settings, stop)
    settings, nc = await startup.nats("fleet-worker", streams=[graph_stream(settings)])
    try:
        broker_url = settings.broker_url or settings.nats_url
        shown = redact_url(broker_url)
        # The broker connects on a thread of its own (blocking); a failure is retried like the rest.
        broker = await startup.step(f"the dramatiq broker at {shown}",
                                    lambda: asyncio.to_thread(broker_from_url, broker_url,
                                                              **_broker_options(broker_url, settings)))
    finally:
        await nc.drain()
    return settings, broker


def _broker_options(broker_url: str, settings: Settings) -> dict[str, Any]:
    """The JetStream broker's stream is replicated like the fleet's others (FLEET_STREAM_REPLICAS)."""
    if broker_url.split(":", 1)[0].lower() in ("nats", "tls") and settings.stream_replicas > 1:
        return {"replicas": settings.stream_replicas}
    return {}


def register(cli: click.Group) -> None:
    cli.add_command(worker_cmd)
