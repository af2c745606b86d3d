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
from pathlib import Path

from _util import figure, peak_rss_mb, percentile, publish_then_ingest

from ops.embedded import NatsServer
from ops.settings import load_settings
from ops.simulate import simulate
from ops.wiring import open_log


async def run(settings, n_events: int) -> None:
    publish_rate, ingest_rate, stats = await publish_then_ingest(settings, simulate(n_events, seed=42))
    figure("publish_rate", publish_rate, "events/s")
    with open_log(settings, readonly=True) as event_log:
        head = event_log.head
    if head != n_events:
        raise SystemExit(f"log holds {head} events, expected {n_events}")
    figure("events", n_events, "events")
    figure("ingest_rate", ingest_rate, "events/s")
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
