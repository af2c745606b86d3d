"""Ingest benchmark: sustained rate from JetStream into the committed log.

Starts its own nats-server on a free port and a temporary data directory,
preloads N simulated events (random UUID4 event ids, as real producers send),
then runs the ingest worker until the stream is drained and reports:

    ingest_rate: events/s from the first message received to the last commit+ack
    batch_commit_p50 / batch_commit_p99: ms per batch commit
    peak_rss: MB of this process (publisher and worker share it)

Usage: python bench/ingest.py [--events N] [--batch B]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from _util import figure, peak_rss_mb, percentile

from ops.embedded import NatsServer
from ops.settings import load_settings
from ops.simulate import simulate
from ops.wiring import ingest_config, log_writer, open_log, sdlc_stream
from workers.ingest import IngestWorker
from workers.nats import connect, ensure_stream
from workers.publish import publish_events


async def run(settings, n_events: int) -> None:
    nc = await connect(settings.nats_url, name="bench-publish")
    await ensure_stream(nc.jetstream(), sdlc_stream(settings))
    started = time.perf_counter()
    report = await publish_events(nc, simulate(n_events, seed=42), prefix=settings.subject_prefix)
    figure("publish_rate", report.published / (time.perf_counter() - started), "events/s")
    await nc.drain()

    nc = await connect(settings.nats_url, name="bench-ingest")
    writer = log_writer(settings)
    worker = IngestWorker(nc, writer, ingest_config(settings))
    idle = 0.5
    started = time.perf_counter()
    stats = await worker.run(asyncio.Event(), until_idle_secs=idle)
    elapsed = time.perf_counter() - started - idle
    writer.close()
    with open_log(settings, readonly=True) as event_log:
        head = event_log.head
    await nc.drain()
    if head != n_events:
        raise SystemExit(f"log holds {head} events, expected {n_events}")
    figure("events", n_events, "events")
    figure("ingest_rate", stats.appended / elapsed, "events/s")
    figure("batch_commit_p50", percentile(stats.commit_ms, 50), "ms")
    figure("batch_commit_p99", percentile(stats.commit_ms, 99), "ms")
    figure("batches", stats.batches, "batches")
    figure("peak_rss", peak_rss_mb(), "MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--writer", choices=["process", "thread"], default="process")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server = NatsServer(tmp / "nats").start()
    try:
        settings = load_settings({}, data_dir=tmp / "data", nats_url=server.url, embedded_nats=False,
                                 ingest_batch_max=args.batch, ingest_writer=args.writer)
        asyncio.run(run(settings, args.events))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
