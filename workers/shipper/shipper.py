"""The log shipper: the writer's committed rows, in position order, to the ``LOG`` stream.

Each row is one message (:mod:`events.shipped`) with ``Nats-Msg-Id`` = its
position and ``Nats-Expected-Last-Sequence`` = its position - 1, so JetStream
stores position *p* only as the stream's message *p*: a row can be neither
skipped nor stored twice, whatever crashes in between, and the stream's
sequence is the log position. After a crash (or a refused publish) the
shipper resumes from the stream's last message, after checking that its hash
is this log's at that position - two logs with different histories never
ship into one stream. It runs beside the log's single writer (``fleet
ingest``), woken by the writer's ``fleet.log.appended`` and by a poll.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import nats.errors
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from opentelemetry import trace

from events.errors import ChainBroken, NotFound, PermanentError, TransientError
from events.log import EventLog
from events.shipped import decode_row, encode_row
from workers.natsio.backoff import backoff_secs
from workers.natsio.client import LOG_APPENDED_SUBJECT, hpub_frame
from workers.natsio.streams import StreamSpec, ensure_stream
from workers.shipper import telemetry

__all__ = ["CHECKPOINT_HEADER", "LogShipper", "ShipConfig", "ShippedBehind", "last_shipped"]

#: header of the row at the head a batch was read with: the primary's ingest checkpoint then
CHECKPOINT_HEADER = "Fleet-Ingest-Checkpoint"

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class ShippedBehind(PermanentError):
    """The LOG stream holds positions this log does not: it is not the writer's log (yet)."""


@dataclass(frozen=True, kw_only=True)
class ShipConfig:
    """Where and how the shipper ships (built from Settings in ``ops``)."""

    stream: StreamSpec
    subject: str
    #: the ingest consumer whose checkpoint travels with the rows (a replica that takes over
    #: resumes the SDLC stream from it)
    consumer: str = "ingest"
    batch_max: int = 2_000
    poll_interval_ms: int = 200
    ack_timeout_secs: float = 30
    #: tests only - "ship_mid_batch": SIGKILL with the second batch published, its acks unread
    failpoint: str | None = None


async def last_shipped(js, stream: str) -> tuple[int, str | None]:
    """The LOG stream's last position and that row's hash (hex); ``(0, None)`` when empty."""
    info = await js.stream_info(stream)
    last = info.state.last_seq or 0
    if not last:
        return 0, None
    msg = await js.get_msg(stream, last)
    row = decode_row(msg.data)
    if row.position != last:
        raise ChainBroken(f"stream {stream} holds position {row.position} as its message {last}:"
                          " it was not filled by the fleet's shipper - it must be a new, empty stream")
    return last, row.hash


class LogShipper:
    """Ships ``log_path``'s rows to ``config.stream`` until stopped."""

    def __init__(self, nc: Client, log_path: str | Path, config: ShipConfig) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=10)
        self.log_path = Path(log_path)
        self.config = config
        self.shipped = 0  # the stream's last position, as far as this shipper knows
        self.head = 0  # the log's head at the last look
        self.batches = 0
        self.resumes = 0
        self._log: EventLog | None = None
        self._acks = _Acks()
        self._ack_sub = None
        self._ack_prefix = ""
        self._wake = asyncio.Event()
        self._progress_at = time.time()

    def health(self) -> dict:
        """Heartbeat details: what LOG holds and how far behind the log it is."""
        return {"shipped": self.shipped, "head": self.head, "lag": max(0, self.head - self.shipped),
                "resumes": self.resumes, "progress_at": self._progress_at}

    async def setup(self) -> int:
        """Create the stream when missing, then resume: the position the stream holds."""
        await ensure_stream(self._js, self.config.stream)
        if self._ack_sub is None:
            self._ack_prefix = self._nc.new_inbox()
            self._ack_sub = await self._nc.tap(f"{self._ack_prefix}.*", self._acks.on_frame)
        return await self._resume()

    async def _resume(self) -> int:
        """Take the stream's last position as where shipping goes on, once this log agrees with it."""
        last, digest = await last_shipped(self._js, self.config.stream.name)
        if last:
            event_log = await self._open()
            head = event_log.head
            if last > head:
                raise ShippedBehind(
                    f"stream {self.config.stream.name} holds positions up to {last}, this log"
                    f" ({self.log_path}) only up to {head}: it is not the log the stream was"
                    " shipped from - a replica catches up with `fleet replica` before it takes over")
            mine = next(event_log.rows(last, to_position=last, batch_size=1))[0][-1].hex()
            if mine != digest:
                raise ChainBroken(
                    f"stream {self.config.stream.name} has hash {digest[:16]}... at position {last},"
                    f" this log {mine[:16]}...: they are different histories - refusing to ship")
        if last != self.shipped:
            log.info("shipping resumes", extra={"stream": self.config.stream.name, "position": last})
        self.shipped = last
        self.resumes += 1
        return last

    async def _open(self) -> EventLog:
        if self._log is None:
            self._log = await asyncio.to_thread(EventLog, self.log_path, readonly=True)
        return self._log

    def _read(self, event_log: EventLog, start: int) -> tuple[int, int, list[tuple]]:
        head, checkpoint = event_log.head_and_checkpoint(self.config.consumer)
        if head < start:
            return head, checkpoint, []
        return head, checkpoint, next(event_log.rows(start, batch_size=self.config.batch_max,
                                                     to_position=head), [])

    async def ship_once(self) -> int:
        """Ship one batch of what the log holds past the stream; how many rows went."""
        try:
            event_log = await self._open()
        except NotFound:
            return 0  # no log yet: the writer has not started
        self.head, checkpoint, rows = await asyncio.to_thread(self._read, event_log, self.shipped + 1)
        if not rows:
            return 0
        # The checkpoint covers events at or below the head it was read with: it rides on
        # that row only, so a replica never holds a checkpoint beyond its rows.
        last_headers = {CHECKPOINT_HEADER: str(checkpoint)} if checkpoint and rows[-1][0] == self.head else {}
        started = time.perf_counter()
        with tracer.start_as_current_span("ship.batch") as span:
            span.set_attribute("fleet.ship.first", rows[0][0])
            span.set_attribute("fleet.ship.rows", len(rows))
            # One buffer of ready-made frames, acks counted by a raw tap: nats-py's publish
            # and its per-ack Msg cost more than the rest of shipping together.
            reply = self._acks.expect(self._ack_prefix, len(rows))
            subject = self.config.subject
            frames, size = [], 0
            for row in rows:
                position = row[0]
                headers = {"Nats-Msg-Id": str(position), "Nats-Expected-Last-Sequence": str(position - 1)}
                if row is rows[-1]:
                    headers.update(last_headers)
                payload = encode_row(row)
                size += len(payload)
                frames.append(hpub_frame(subject, reply, headers, payload))
            await self._nc.publish_frames(b"".join(frames), len(rows), size)
            if self.config.failpoint == "ship_mid_batch" and self.batches:
                os.kill(os.getpid(), signal.SIGKILL)
            try:
                await asyncio.wait_for(self._acks.done.wait(), self.config.ack_timeout_secs)
            except TimeoutError:
                raise TransientError(f"JetStream acknowledged {self._acks.acked} of {len(rows)} shipped"
                                     f" rows within {self.config.ack_timeout_secs:g}s - is the"
                                     f" stream {self.config.stream.name} there and its servers up?") from None
        if self._acks.errors:
            # A refused row refuses every later one (each expects the one before): start
            # again from what the stream holds.
            log.warning("shipping refused, resuming from the stream's last message", extra={
                "first": rows[0][0], "errors": self._acks.errors[:3],
                "refused": len(self._acks.errors)})
            await self._resume()
            return 0
        self.shipped = rows[-1][0]
        self.batches += 1
        self._progress_at = time.time()
        telemetry.shipped.add(len(rows))
        telemetry.ship_ms.record((time.perf_counter() - started) * 1000)
        return len(rows)

    def notify(self) -> None:
        """Ship now (the writer committed)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Ship until ``stop``: everything committed, then each commit as it lands."""
        await self.setup()
        sub = await self._nc.subscribe(LOG_APPENDED_SUBJECT, cb=self._on_appended)
        attempt = 0
        try:
            while not stop.is_set():
                try:
                    shipped = await self.ship_once()
                    attempt = 0
                except (TimeoutError, TransientError, nats.errors.Error, NotFoundError) as e:
                    attempt += 1
                    delay = backoff_secs(attempt, 0.5)
                    log.warning("shipping failed, retrying", extra={"error": repr(e), "retry_in_secs": delay})
                    await _wait(stop, delay)
                    try:
                        await self._resume()
                    except (TimeoutError, TransientError, nats.errors.Error, NotFoundError):
                        pass  # the next round retries
                    continue
                if not shipped:
                    self._wake.clear()
                    await _wait(self._wake, self.config.poll_interval_ms / 1000, stop)
        finally:
            await sub.unsubscribe()
            if self._ack_sub is not None:
                await self._ack_sub.unsubscribe()
                self._ack_sub = None
            if self._log is not None:
                self._log.close()
                self._log = None

    async def _on_appended(self, msg) -> None:
        self._wake.set()


class _Acks:
    """JetStream's acks of the batch in flight, counted straight from the parser (a raw tap).

    Each batch has a reply subject of its own, so a late ack of an earlier batch
    (one that failed) is not counted for the next.
    """

    def __init__(self) -> None:
        self.reply = b""
        self.expected = 0
        self.acked = 0
        self.errors: list[str] = []
        self.done = asyncio.Event()
        self._batch = 0

    def expect(self, prefix: str, count: int) -> str:
        """Start counting a batch of ``count``; its reply subject."""
        self._batch += 1
        reply = f"{prefix}.{self._batch}"
        self.reply, self.expected, self.acked, self.errors = reply.encode(), count, 0, []
        self.done.clear()
        return reply

    def on_frame(self, subject: bytes, reply: bytes, payload: bytes, hdr: bytes | None) -> None:
        if subject != self.reply:
            return
        if hdr is not None and hdr.startswith(b"NATS/1.0 503"):
            self.errors.append("no JetStream stream matches the subject")
        elif b'"error"' in payload:
            self.errors.append(payload.decode(errors="replace"))
        self.acked += 1
        if self.acked >= self.expected:
            self.done.set()


async def _wait(event: asyncio.Event, secs: float, stop: asyncio.Event | None = None) -> None:
    """Wait for ``event`` (or ``stop``) at most ``secs``."""
    waits = [asyncio.ensure_future(event.wait())]
    if stop is not None:
        waits.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waits, timeout=secs, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
