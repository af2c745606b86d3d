"""Ingest under NATS faults: a restart, a kill -9, a server that cuts off slow consumers.

Each test has a server of its own: they stop it or configure it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest

from ops.embedded import NatsServer
from ops.settings import load_settings
from ops.wiring import ingest_config, open_log, sdlc_stream
from tests.support.ingest import publish_raw
from tests.support.issues import make_issue
from tests.support.wait import wait_until
from workers.ingest.consumer import IngestWorker
from workers.ingest.writer import BatchWriter
from workers.natsio.client import connect
from workers.natsio.publish import publish_events
from workers.natsio.streams import ensure_stream

pytestmark = pytest.mark.slow


def test_a_nats_restart_mid_stream_loses_nothing(tmp_path):
    """Stop and restart the server while ingesting: every event ends up in the log once."""
    server = NatsServer(tmp_path / "nats").start()
    settings = load_settings({}, data_dir=tmp_path / "data", nats_url=server.url, embedded_nats=False)
    first = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(300)]
    second = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(300, 600)]

    async def main():
        nc = await connect(settings.nats_url, name="ingest")
        await ensure_stream(nc.jetstream(), sdlc_stream(settings))
        writer = BatchWriter(open_log(settings), settings.ingest_durable)
        event_log = open_log(settings, readonly=True)
        stop = asyncio.Event()
        worker = IngestWorker(nc, writer, ingest_config(settings))
        task = asyncio.create_task(worker.run(stop))
        producer = await connect(settings.nats_url, name="producer")
        await publish_events(producer, first)
        await wait_until(lambda: event_log.head == 300, timeout_secs=20)

        server.stop()
        await asyncio.sleep(0.5)
        server.start()
        await wait_until(lambda: producer.is_connected and nc.is_connected, timeout_secs=30)
        report = await publish_events(producer, second)
        assert report.published == 300
        await wait_until(lambda: event_log.head == 600, timeout_secs=30)
        await producer.drain()
        return await _stop_and_read(worker, stop, task, nc, writer, event_log)

    try:
        stats, ids, ok = asyncio.run(main())
    finally:
        server.stop()
    assert ids == [e.event_id for e in first + second]
    assert ok and stats.appended == 600


async def _stop_and_read(worker, stop, task, nc, writer, event_log):
    """Stop the worker; ``(its stats, the log's event ids, whether the log verifies)``."""
    stop.set()
    worker._wake.set()
    stats = await task
    await wait_until(lambda: nc.is_connected, timeout_secs=20)
    await nc.drain()
    ids = [e.event_id for b in event_log.read() for e in b]
    ok = event_log.verify().ok
    event_log.close()
    writer.close()
    return stats, ids, ok


class _TightServer(NatsServer):
    """A nats-server that cuts off a client with more than 2 MB unread (default: 64 MB)."""

    def command(self) -> list[str]:
        conf = self.store_dir.parent / "tight.conf"
        conf.write_text("max_pending: 2MB\nmax_payload: 64KB\n")
        return super().command() + ["-c", str(conf)]


def test_ingest_asks_for_no_more_than_the_server_lets_it_have_unread(tmp_path):
    """Requests carry a byte limit, so a large ``batch_max`` does not get the worker cut off
    as a slow consumer (before: 12 disconnects and rewinds for these 20,000 messages)."""
    server = _TightServer(tmp_path / "nats").start()
    try:
        settings = load_settings({}, data_dir=tmp_path / "data", nats_url=server.url,
                                 embedded_nats=False)
        asyncio.run(publish_raw(settings, [b"x" * 1000] * 20_000))
        config = replace(ingest_config(settings), batch_max=5_000, inflight_bytes=1 << 20)

        async def main():
            nc = await connect(settings.nats_url, name="ingest")
            writer = BatchWriter(open_log(settings), settings.ingest_durable)
            try:
                stats = await IngestWorker(nc, writer, config).run(asyncio.Event(), until_idle_secs=1)
            finally:
                writer.close()
            reconnects = nc.stats["reconnects"]
            await nc.drain()
            return stats, reconnects

        stats, reconnects = asyncio.run(main())
    finally:
        server.stop()
    assert reconnects == 0 and stats.rewinds == 0
    assert stats.quarantined == 20_000


def test_a_nats_server_killed_with_deliveries_in_flight_loses_nothing(tmp_path):
    """Kill -9 of nats-server while hundreds of deliveries are on the wire, then restart:
    the log ends with every event exactly once, in stream order."""
    server = NatsServer(tmp_path / "nats").start()
    settings = load_settings({}, data_dir=tmp_path / "data", nats_url=server.url, embedded_nats=False)
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(20_000)]

    async def main():
        producer = await connect(settings.nats_url, name="producer")
        await ensure_stream(producer.jetstream(), sdlc_stream(settings))
        await publish_events(producer, events, prefix=settings.subject_prefix)
        await producer.close()
        nc = await connect(settings.nats_url, name="ingest")
        writer = BatchWriter(open_log(settings), settings.ingest_durable)
        event_log = open_log(settings, readonly=True)
        stop = asyncio.Event()
        # Small batches: a few hundred deliveries are always on their way.
        worker = IngestWorker(nc, writer, replace(ingest_config(settings), batch_max=200))
        task = asyncio.create_task(worker.run(stop))
        await wait_until(lambda: worker.stats.appended >= 2_000, timeout_secs=20, interval_secs=0.001)
        server.stop(kill=True)
        server.start()
        await wait_until(lambda: event_log.head >= len(events), timeout_secs=60)
        return await _stop_and_read(worker, stop, task, nc, writer, event_log)

    try:
        stats, ids, ok = asyncio.run(main())
    finally:
        server.stop()
    assert ids == [e.event_id for e in events]
    assert ok and stats.appended == len(events)
