"""Feeding the SDLC stream and draining it into the log with an in-process ingest worker."""

from __future__ import annotations

import asyncio

from ops.wiring import ingest_config, log_writer, sdlc_stream
from workers.ingest.consumer import IngestWorker
from workers.natsio.client import connect
from workers.natsio.publish import Publisher
from workers.natsio.streams import ensure_stream


async def publish_raw(settings, bodies: list[bytes], *, msg_ids: list[str | None] | None = None):
    """Publish ``bodies`` as they are (valid or not) to the test's SDLC stream; the publish report."""
    nc = await connect(settings.nats_url, name="test")
    await ensure_stream(nc.jetstream(), sdlc_stream(settings))
    publisher = Publisher(nc)
    for i, body in enumerate(bodies):
        await publisher.publish(f"{settings.subject_prefix}.test.raw", body,
                                msg_id=msg_ids[i] if msg_ids else None, headers={"X-Test": str(i)})
    report = await publisher.flush()
    await nc.drain()
    return report


async def ingest_until_idle(settings, idle: float = 0.3):
    """Run an ingest worker until the stream has been quiet for ``idle`` seconds; its stats."""
    nc = await connect(settings.nats_url, name="test-ingest")
    writer = log_writer(settings)
    try:
        return await IngestWorker(nc, writer, ingest_config(settings)).run(
            asyncio.Event(), until_idle_secs=idle)
    finally:
        writer.close()
        await nc.drain()
