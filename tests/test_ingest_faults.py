"""Ingest survives a NATS restart (own server per test: these tests stop it)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ops.embedded import NatsServer
from ops.settings import load_settings
from ops.wiring import ingest_config, open_log, sdlc_stream
from tests.conftest import make_issue, wait_for
from workers.ingest import IngestWorker
from workers.log_writer import BatchWriter
from workers.nats import connect, ensure_stream
from workers.publish import publish_events

pytestmark = pytest.mark.slow


def test_a_nats_restart_mid_stream_loses_nothing(tmp_path):
    """Stop and restart the server while ingesting: every event ends up in the log once."""
    server = NatsServer(tmp_path / "nats").start()
    settings = load_settings({}, data_dir=tmp_path / "data", nats_url=server.url, embedded_nats=False)
    first = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(300)]
    second = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(300, 600)]

    async def head_is(event_log, n):
        return event_log.head == n

    async def main():
        nc = await connect(settings.nats_url, name="ingest")
        await ensure_stream(nc.jetstream(), sdlc_stream(settings))
        writer = BatchWriter(open_log(settings), settings.ingest_durable)
        event_log = open_log(settings, readonly=True)
        stop = asyncio.Event()
        task = asyncio.create_task(IngestWorker(nc, writer, ingest_config(settings)).run(stop))
        producer = await connect(settings.nats_url, name="producer")
        await publish_events(producer, first)
        await wait_for(lambda: event_log.head == 300)

        server.stop()
        await asyncio.sleep(0.5)
        server.start()
        await wait_for(lambda: producer.is_connected and nc.is_connected, timeout=30)
        report = await publish_events(producer, second)
        assert report.published == 300
        await wait_for(lambda: event_log.head == 600, timeout=30)
        stop.set()
        stats = await task
        await producer.drain()
        await nc.drain()
        ids = [e.event_id for b in event_log.read() for e in b]
        ok = event_log.verify().ok
        event_log.close()
        writer.close()
        return stats, ids, ok

    try:
        stats, ids, ok = asyncio.run(main())
    finally:
        server.stop()
    assert ids == [e.event_id for e in first + second]
    assert ok and stats.appended == 600
