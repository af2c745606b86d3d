"""Shared helpers for the standalone benchmarks (not part of the package)."""

from __future__ import annotations

import resource
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["figure", "peak_rss_mb", "percentile", "publish_then_ingest"]


def figure(name: str, value: float, unit: str) -> None:
    """Print one figure as ``name: value unit``."""
    if isinstance(value, float):
        text = f"{value:.3f}" if value < 100 else f"{value:,.0f}".replace(",", "")
    else:
        text = str(value)
    print(f"{name}: {text} {unit}", flush=True)


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) of ``values``."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(p) - 1))]


async def publish_then_ingest(settings, events, *, idle_secs: float = 0.5):
    """Publish ``events`` to the SDLC stream, then ingest until drained.

    Returns ``(publish_rate, ingest_rate, stats)``: events/s of the acked
    preload, events/s from the first message received to the last commit +
    ack (the idle wait that ends the run is not counted), and the worker's
    :class:`~workers.ingest.consumer.IngestStats`.
    """
    import asyncio
    import time

    from ops.wiring import ingest_config, log_writer, sdlc_stream
    from workers.ingest.consumer import IngestWorker
    from workers.natsio.client import connect
    from workers.natsio.publish import publish_events
    from workers.natsio.streams import ensure_stream

    nc = await connect(settings.nats_url, name="bench-publish")
    await ensure_stream(nc.jetstream(), sdlc_stream(settings))
    started = time.perf_counter()
    report = await publish_events(nc, events, prefix=settings.subject_prefix)
    publish_rate = report.published / (time.perf_counter() - started)
    await nc.drain()

    nc = await connect(settings.nats_url, name="bench-ingest")
    writer = log_writer(settings)
    try:
        started = time.perf_counter()
        stats = await IngestWorker(nc, writer, ingest_config(settings)).run(
            asyncio.Event(), until_idle_secs=idle_secs)
        elapsed = time.perf_counter() - started - idle_secs
    finally:
        writer.close()
        await nc.drain()
    return publish_rate, stats.appended / elapsed, stats
