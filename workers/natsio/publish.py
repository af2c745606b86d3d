"""Pipelined, acknowledged publishing to JetStream.

``js.publish`` awaited one message at a time runs at a few thousand messages
per second; this publisher keeps up to ``window`` messages in flight, counts
JetStream's acks in one callback, and :meth:`Publisher.flush` waits until
every message is acknowledged (or raises, naming how many were not). Every
message carries ``Nats-Msg-Id`` so JetStream drops republished duplicates.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Iterable

from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry import propagate

from events.codec import encode_event
from events.errors import TransientError
from events.types import Event, subject_for

__all__ = ["Publisher", "PublishReport", "publish_events", "RateLimiter"]


@dataclass
class PublishReport:
    """What a publish run achieved: stored, dropped as duplicates, refused."""

    published: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


class Publisher:
    """Publish with a bounded window of unacknowledged messages."""

    def __init__(self, nc: Client, *, window: int = 10_000, ack_timeout_secs: float = 30) -> None:
        self._nc = nc
        self._window = window
        self._ack_timeout = ack_timeout_secs
        self._prefix = nc.new_inbox()
        self._sub = None
        self._seq = 0
        self._pending: set[int] = set()
        self._room = asyncio.Event()
        self._room.set()
        self._drained = asyncio.Event()
        self._drained.set()
        self.report = PublishReport()

    async def _on_ack(self, msg: Msg) -> None:
        seq = int(msg.subject.rsplit(".", 1)[1])
        if seq not in self._pending:
            return
        self._pending.discard(seq)
        data = msg.data
        status = msg.headers.get("Status") if msg.headers else None
        if status == "503":
            self.report.errors.append(f"message {seq}: no JetStream stream matches its subject")
        elif b'"error"' in data:
            self.report.errors.append(f"message {seq}: {data.decode(errors='replace')}")
        elif b'"duplicate"' in data:  # the server writes `"duplicate": true`
            self.report.duplicates += 1
        else:
            self.report.published += 1
        if len(self._pending) < self._window:
            self._room.set()
        if not self._pending:
            self._drained.set()

    async def publish(self, subject: str, payload: bytes, *, msg_id: str | None,
                      headers: dict[str, str] | None = None) -> None:
        """Send one message; waits only when the window of unacked messages is full."""
        if self._sub is None:
            self._sub = await self._nc.subscribe(
                self._prefix + ".*", cb=self._on_ack, pending_msgs_limit=-1, pending_bytes_limit=-1
            )
        while len(self._pending) >= self._window:
            self._room.clear()
            await self._wait(self._room)
        self._seq += 1
        self._pending.add(self._seq)
        self._drained.clear()
        hdrs = dict(headers) if headers else {}
        if msg_id:
            hdrs["Nats-Msg-Id"] = msg_id
        await self._nc.publish(subject, payload, reply=f"{self._prefix}.{self._seq}", headers=hdrs or None)

    async def _wait(self, event: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(event.wait(), self._ack_timeout)
        except asyncio.TimeoutError:
            raise TransientError(
                f"JetStream did not acknowledge {len(self._pending)} messages within"
                f" {self._ack_timeout:.0f}s - is the stream there and the server up?"
            ) from None

    async def flush(self) -> PublishReport:
        """Wait for every outstanding ack and return the report."""
        await self._nc.flush()
        if self._pending:
            await self._wait(self._drained)
        return self.report

    async def close(self) -> None:
        """Stop listening for acks."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None


class RateLimiter:
    """Paces a loop to ``rate`` iterations per second (0 = unlimited)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1 / rate if rate > 0 else 0.0
        self._start = time.monotonic()
        self._count = 0

    async def tick(self) -> None:
        """Account for one iteration; sleep when ahead of schedule."""
        if not self._interval:
            return
        self._count += 1
        ahead = self._start + self._count * self._interval - time.monotonic()
        if ahead > 0.002:
            await asyncio.sleep(ahead)


async def publish_events(
    nc: Client,
    events: Iterable[Event] | AsyncIterator[Event],
    *,
    prefix: str = "sdlc",
    rate: float = 0,
    window: int = 10_000,
    progress: Callable[[int], None] | None = None,
    trace: bool = False,
) -> PublishReport:
    """Publish canonical events, paced to ``rate`` per second, and wait for all acks.

    With ``trace`` every message carries the current span's W3C ``traceparent``
    (per-event tracing is for sampled events, not for bulk loads).
    """
    publisher = Publisher(nc, window=window)
    limiter = RateLimiter(rate)
    sent = 0

    async def send(event: Event) -> None:
        nonlocal sent
        headers: dict[str, str] = {}
        if trace:
            propagate.inject(headers)
        await publisher.publish(subject_for(event, prefix), encode_event(event), msg_id=event.event_id,
                                headers=headers or None)
        sent += 1
        if progress and sent % 10_000 == 0:
            progress(sent)
        await limiter.tick()

    try:
        if hasattr(events, "__aiter__"):
            async for event in events:  # type: ignore[union-attr]
                await send(event)
        else:
            for event in events:  # type: ignore[union-attr]
                await send(event)
        report = await publisher.flush()
    finally:
        await publisher.close()
    if progress:
        progress(sent)
    return report
